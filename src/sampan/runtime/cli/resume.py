"""resume <id>: thaw a paused container."""


from __future__ import annotations

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import resume

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    resume(ctx.root, need_id(positionals, "resume"))
    return 0
