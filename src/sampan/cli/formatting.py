"""``--format`` as Docker's formatter applies it: ``table`` directive, ``json``, templates.

``\\t`` and ``\\n`` typed literally in a format become a tab and a newline; a ``table``
format prints a header row (the template run over the column titles) and aligns the
columns with ``tabwriter``; every row ends with a newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sampan.cli.gotemplate import Template, TemplateError, go_json
from sampan.cli.tabwriter import align


class _Headers:
    """Stands in for a row while the header line is rendered: each field is its title."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        self._titles = titles

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        title = self._titles.get(name, name.upper())

        class _Title(str):
            def __call__(self, *args: Any) -> str:
                return str(self)

        return _Title(title)


def _header_function(*args: Any) -> str:
    return str(args[-1]) if args else ""


_HEADER_FUNCTIONS = {name: _header_function for name in
                     ("json", "join", "split", "lower", "upper", "title", "pad", "truncate")}


def prepare(format_text: str) -> tuple[bool, str]:
    """(is_table, template text) with Docker's escapes applied."""
    is_table = format_text.startswith("table")
    text = format_text[len("table"):] if is_table else format_text
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return is_table, text


def render_rows(format_text: str, rows: Iterable[Any], titles: Mapping[str, str]) -> str:
    """The whole output for ``rows`` (each an object or dict the template reads)."""
    if format_text == "json":
        return "".join(go_json(row) + "\n" for row in rows)
    is_table, text = prepare(format_text)
    template = Template(text)
    body = "".join(template.execute(row) + "\n" for row in rows)
    if not is_table:
        return body
    header = Template(text, _HEADER_FUNCTIONS).execute(_Headers(titles))
    return align(header + "\n" + body)


def render_each(format_text: str, items: Iterable[Any]) -> str:
    """``inspect -f``: the template over each item, one line each (``json`` = compact JSON)."""
    if format_text == "json":
        return "".join(go_json(item) + "\n" for item in items)
    template = Template(format_text)
    return "".join(template.execute(item) + "\n" for item in items)


__all__ = ["TemplateError", "prepare", "render_each", "render_rows"]
