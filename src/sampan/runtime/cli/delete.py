"""delete [--force] <id>: remove a stopped (or, forced, any) container."""

from typing import Any

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import delete

FLAGS: FlagSpec = {"force": (False, ("f",))}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    delete(ctx.root, need_id(positionals, "delete"), bool(values.get("force")))
    return 0
