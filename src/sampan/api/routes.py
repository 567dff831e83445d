"""The route table: (method, path pattern, handler), matched against the unversioned path.

Patterns use ``{name}`` for one path segment and ``{name:.*}`` for a name that may hold
slashes (image references: ``/images/ghcr.io/o/r:1/json``). The regex for ``.*`` is greedy,
so the operation suffix (``/json``, ``/tag``, ...) is matched from the right-hand end.
Method ``*`` matches any method. Routes are tried in table order; a path that matches
some route but not its method gets 405.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sampan.api.http import Handler

_PARAM = re.compile(r"\{(\w+)(?::([^}]*))?\}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler

    def compiled(self) -> re.Pattern[str]:
        return _compile(self.pattern)


def _compile(pattern: str) -> re.Pattern[str]:
    regex = ""
    pos = 0
    for match in _PARAM.finditer(pattern):
        regex += re.escape(pattern[pos : match.start()])
        name, kind = match.group(1), match.group(2)
        regex += f"(?P<{name}>.+)" if kind == ".*" else f"(?P<{name}>[^/]+)"
        pos = match.end()
    regex += re.escape(pattern[pos:])
    return re.compile(f"^{regex}$")


class RouteTable:
    """Finds the handler for a method and an unversioned path."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(route, route.compiled()) for route in routes]

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | bool | None:
        """(handler, path params) on a match; ``True`` when the path exists for another
        method (405); ``None`` when nothing matches (404)."""
        path_matched = False
        for route, regex in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route.method in (method, "*") or (method == "HEAD" and route.method == "GET"):
                return route.handler, found.groupdict()
            path_matched = True
        return True if path_matched else None
