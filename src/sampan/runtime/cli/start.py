"""start <id>: let a created container's init exec the user's process."""

from typing import Any

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import start

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    start(ctx.root, need_id(positionals, "start"))
    return 0
