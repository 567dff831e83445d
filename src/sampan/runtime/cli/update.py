"""update [flags] <id>: change the resource limits of a running container.

Resources come from flags or ``-r FILE`` (``-`` = stdin, as containerd sends them). A field
that is absent or zero means "unchanged", as in runc.
"""


from __future__ import annotations

import json
import re
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

FLAGS: FlagSpec = {
    "resources": (True, ("r",)),
    "memory": (True, ("m",)),
    "memory-reservation": (True, ()),
    "memory-swap": (True, ()),
    "kernel-memory": (True, ()),
    "kernel-memory-tcp": (True, ()),
    "cpu-quota": (True, ()),
    "cpu-period": (True, ()),
    "cpu-shares": (True, ()),
    "cpu-rt-period": (True, ()),
    "cpu-rt-runtime": (True, ()),
    "cpuset-cpus": (True, ()),
    "cpuset-mems": (True, ()),
    "pids-limit": (True, ()),
    "blkio-weight": (True, ()),
    "l3-cache-schema": (True, ()),
    "mem-bw-schema": (True, ()),
}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^(-1|\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$")


def parse_bytes(raw: str, flag: str) -> int:
    """"64m", "1g", "512k", "1048576" or "-1" (unlimited) -> bytes, binary units as runc."""
    match = _SIZE.match(raw.strip().lower())
    if not match:
        raise errdefs.InvalidParameter(f"invalid value {raw!r} for --{flag}")
    if match.group(1) == "-1":
        return -1
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _int(raw: str, flag: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid value {raw!r} for --{flag}") from None


def resources_from_flags(values: dict[str, Any]) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    for flag, key in (("memory", "limit"), ("memory-reservation", "reservation"),
                      ("memory-swap", "swap"), ("kernel-memory", "kernel"),
                      ("kernel-memory-tcp", "kernelTCP")):
        if values.get(flag):
            memory[key] = parse_bytes(values[flag], flag)
    cpu: dict[str, Any] = {}
    for flag, key in (("cpu-quota", "quota"), ("cpu-period", "period"),
                      ("cpu-shares", "shares"), ("cpu-rt-period", "realtimePeriod"),
                      ("cpu-rt-runtime", "realtimeRuntime")):
        if values.get(flag):
            cpu[key] = _int(values[flag], flag)
    if values.get("cpuset-cpus"):
        cpu["cpus"] = values["cpuset-cpus"]
    if values.get("cpuset-mems"):
        cpu["mems"] = values["cpuset-mems"]
    resources: dict[str, Any] = {}
    if memory:
        resources["memory"] = memory
    if cpu:
        resources["cpu"] = cpu
    if values.get("pids-limit"):
        resources["pids"] = {"limit": _int(values["pids-limit"], "pids-limit")}
    if values.get("blkio-weight"):
        resources["blockIO"] = {"weight": _int(values["blkio-weight"], "blkio-weight")}
    return resources


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container = Container(ctx.root, need_id(positionals, "update"))
    if container.status() == state.STOPPED:
        raise errdefs.Conflict("container not running")
    if values.get("resources"):
        source = values["resources"]
        try:
            if source == "-":
                resources = json.load(sys.stdin)
            else:
                with open(source) as src:
                    resources = json.load(src)
        except (OSError, ValueError) as exc:
            raise errdefs.InvalidParameter(f"cannot read resources from {source}: {exc}") \
                from None
        if not isinstance(resources, dict):
            raise errdefs.InvalidParameter("resources must be a JSON object")
    else:
        resources = resources_from_flags(values)
    container.cgroup.update(resources)
    return 0
