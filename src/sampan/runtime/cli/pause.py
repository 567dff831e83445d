"""pause <id>: freeze every process of the container."""

from typing import Any

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import pause

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    pause(ctx.root, need_id(positionals, "pause"))
    return 0
