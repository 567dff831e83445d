"""Hybrid hosts: v1 hierarchies own the controllers, cgroup2 is mounted at /sys/fs/cgroup/unified.

As runc does, the container also gets a cgroup in the unified hierarchy and its processes are
put there too (systemd and eBPF tooling find processes by their v2 cgroup). A controller that
no v1 hierarchy has but the unified one offers (``hugetlb`` on this host) is served from v2.
"""


from __future__ import annotations

from collections.abc import Mapping

from sampan import errdefs
from sampan.runtime.cgroups.v1 import V1Manager
from sampan.runtime.cgroups.v2 import V2Manager

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# top-level key of linux.resources -> (v1 controller, v2 controller) deciding where it goes
_ROUTES = {
    "memory": ("memory", "memory"),
    "cpu": ("cpu", "cpu"),
    "pids": ("pids", "pids"),
    "blockIO": ("blkio", "io"),
    "hugepageLimits": ("hugetlb", "hugetlb"),
    "devices": ("devices", ""),
}


class HybridManager:
    version = "hybrid"

    def __init__(self, v1: V1Manager, unified: V2Manager) -> None:
        self.v1 = v1
        self.unified = unified

    def create(self) -> None:
        self.v1.create()
        self.unified.create()

    def add_process(self, pid: int) -> None:
        self.v1.add_process(pid)
        self.unified.add_process(pid)

    def _split(self, resources: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        v1: dict[str, Any] = {}
        v2: dict[str, Any] = {}
        for key, value in resources.items():
            if key == "unified":
                v2[key] = value
                continue
            v1_controller, v2_controller = _ROUTES.get(key, ("", ""))
            if v1_controller and not self.v1.has(v1_controller) and v2_controller:
                v2[key] = value
            else:
                v1[key] = value
        return v1, v2

    def apply_resources(self, resources: Mapping[str, Any]) -> None:
        v1, v2 = self._split(resources)
        self.v1.apply_resources(v1)
        if v2:
            self.unified.apply_resources(v2)

    def update(self, resources: Mapping[str, Any]) -> None:
        self.apply_resources(resources)

    def freeze(self) -> None:
        (self.v1 if self.v1.has("freezer") else self.unified).freeze()

    def thaw(self) -> None:
        (self.v1 if self.v1.has("freezer") else self.unified).thaw()

    def is_frozen(self) -> bool:
        return (self.v1 if self.v1.has("freezer") else self.unified).is_frozen()

    def pids(self) -> list[int]:
        return self.v1.pids()

    def kill_all(self, signal: int) -> None:
        self.v1.kill_all(signal)

    def oom_kill_count(self) -> int:
        return self.v1.oom_kill_count()

    def stats(self) -> dict[str, Any]:
        data = self.v1.stats()
        if not self.v1.has("hugetlb"):
            hugetlb = self.unified.hugetlb_stats()
            if hugetlb:
                data["hugetlb"] = hugetlb
        return data

    def destroy(self) -> None:
        errors: list[errdefs.SampanError] = []
        for manager in (self.v1, self.unified):
            try:
                manager.destroy()
            except errdefs.SampanError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "paths": self.v1.paths,
            "unified": self.unified.path,
            "unified_root": self.unified.root,
        }
