"""events [--stats] [--interval N] <id>: resource usage and OOM notifications as JSON lines."""


from __future__ import annotations

import json
import sys
import time

from sampan import errdefs
from sampan.runtime import state
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.container import Container

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {"stats": (False, ()), "interval": (True, ())}


def parse_interval(raw: str) -> float:
    """runc takes Go durations ("5s", "500ms", "1m"); a bare number is seconds."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if raw.endswith(suffix) and raw[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(raw[: -len(suffix)]) * scale
    try:
        return float(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid --interval {raw!r}") from None


def _emit(kind: str, container_id: str, data: dict[str, Any] | None = None) -> None:
    event: dict[str, Any] = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container_id = need_id(positionals, "events")
    container = Container(ctx.root, container_id)
    if container.status() == state.STOPPED:
        raise errdefs.Conflict("container not running")
    if values.get("stats"):
        _emit("stats", container_id, container.cgroup.stats())
        return 0
    interval = parse_interval(values.get("interval", "5s"))
    ooms = container.cgroup.oom_kill_count()
    next_stats = time.monotonic()
    while container.status() != state.STOPPED:
        now_ooms = container.cgroup.oom_kill_count()
        if now_ooms > ooms:
            _emit("oom", container_id)
            ooms = now_ooms
        if time.monotonic() >= next_stats:
            _emit("stats", container_id, container.cgroup.stats())
            next_stats += interval
        time.sleep(min(0.2, interval))
    if container.cgroup.oom_kill_count() > ooms:
        _emit("oom", container_id)
    return 0
