"""create [flags] <id>: set up the container and leave its init waiting for `start`."""


from __future__ import annotations

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, int_flag, need_id
from sampan.runtime.create import CreateOptions, create

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {
    "bundle": (True, ("b",)),
    "pid-file": (True, ()),
    "console-socket": (True, ()),
    "no-pivot": (False, ()),
    "no-new-keyring": (False, ()),
    "preserve-fds": (True, ()),
}


def options_from(values: dict[str, Any], foreground_tty: bool = False) -> CreateOptions:
    return CreateOptions(
        bundle=values.get("bundle") or ".",
        pid_file=values.get("pid-file"),
        console_socket=values.get("console-socket"),
        no_pivot=bool(values.get("no-pivot")),
        preserve_fds=int_flag(values, "preserve-fds"),
        foreground_tty=foreground_tty,
        no_new_keyring=bool(values.get("no-new-keyring")),
    )


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    create(ctx.root, need_id(positionals, "create"), options_from(values))
    return 0
