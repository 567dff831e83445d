"""Was a container's process killed by the OOM killer? Its memory cgroup keeps count.

The count lives in the cgroup the container's init was put in (read from
``/proc/<pid>/cgroup`` right after ``create``, while init is alive): cgroup v1
``memory.oom_control`` and cgroup v2 ``memory.events`` both have an ``oom_kill N`` line
(kernel 4.13+). The supervisor reads it at create and again when init has exited, before
the runtime's ``delete`` removes the cgroup; a higher count means the OOM killer struck.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def oom_counter_path(pid: int, cgroup_root: str = CGROUP_ROOT) -> str | None:
    """The file holding ``oom_kill`` for ``pid``'s memory cgroup, or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = os.path.join(cgroup_root, "memory", path.lstrip("/"), "memory.oom_control")
            if os.path.exists(candidate):
                return candidate
        if controllers == "":
            unified = path
    if unified is not None:
        for base in (cgroup_root, os.path.join(cgroup_root, "unified")):
            candidate = os.path.join(base, unified.lstrip("/"), "memory.events")
            if os.path.exists(candidate):
                return candidate
    return None


def read_oom_kills(counter_path: str | None) -> int:
    """The ``oom_kill`` count in ``counter_path`` (0 when unreadable)."""
    if not counter_path:
        return 0
    try:
        with open(counter_path) as file:
            for line in file:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
