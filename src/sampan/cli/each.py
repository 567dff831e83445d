"""Commands that apply one API call to each named object (stop, kill, rm, pause, ...).

Like docker: each success prints the name as given, each failure prints the daemon's
error on stderr, and the exit status is 1 if anything failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sampan.cli.context import Context
from sampan.client.errors import DaemonError


def for_each(ctx: Context, names: Iterable[str], action: Callable[[str], object],
             echo: bool = True) -> int:
    failed = False
    for name in names:
        try:
            result = action(name)
        except DaemonError as error:
            ctx.err(f"Error response from daemon: {error.message}")
            failed = True
            continue
        if echo:
            ctx.out(name if result is None else str(result))
    return 1 if failed else 0
