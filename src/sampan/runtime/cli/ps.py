"""ps [--format table|json] <id> [ps options]: the container's processes (host pids)."""


from __future__ import annotations

import json
import sys

from sampan import errdefs
from sampan.runtime import state
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.container import Container

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {"format": (True, ("f",))}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container = Container(ctx.root, need_id(positionals, "ps"))
    if container.status() == state.STOPPED:
        raise errdefs.Conflict("container not running")
    pids = sorted(container.cgroup.pids())
    fmt = values.get("format", "table")
    if fmt == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise errdefs.InvalidParameter(f"invalid format option {fmt!r}")
    import subprocess

    options = positionals[1:] or ["-ef"]
    output = subprocess.run(["ps", *options], capture_output=True, text=True, check=True).stdout
    lines = output.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise errdefs.InvalidParameter("ps options must include the PID column")
    column = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
