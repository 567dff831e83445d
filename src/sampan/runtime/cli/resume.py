"""resume <id>: thaw a paused container."""

from typing import Any

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import resume

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    resume(ctx.root, need_id(positionals, "resume"))
    return 0
