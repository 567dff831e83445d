"""delete [--force] <id>: remove a stopped (or, forced, any) container."""


from __future__ import annotations

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import delete

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {"force": (False, ("f",))}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    delete(ctx.root, need_id(positionals, "delete"), bool(values.get("force")))
    return 0
