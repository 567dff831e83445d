"""Open an existing container: its saved state, cgroup manager and status."""


from __future__ import annotations

from sampan.runtime import cgroups, state

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Container:
    def __init__(self, root: str, container_id: str) -> None:
        self.root = root
        self.id = container_id
        self.record: dict[str, Any] = state.load(root, container_id)
        self._manager: cgroups.CgroupManager | None = None

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.record["config"]
        return config

    @property
    def pid(self) -> int:
        pid: int = self.record["pid"]
        return pid

    @property
    def cgroup(self) -> cgroups.CgroupManager:
        if self._manager is None:
            self._manager = cgroups.load_manager(self.record["cgroup"])
        return self._manager

    def status(self) -> str:
        if not state.init_alive(self.record):
            return state.STOPPED
        current = state.status_of(self.root, self.record, frozen=False)
        # a frozen cgroup is "paused" whether or not start has run yet (runc's order)
        if current in (state.RUNNING, state.CREATED) and self.cgroup.is_frozen():
            return state.PAUSED
        return current

    def oci_state(self) -> dict[str, Any]:
        return state.oci_state(self.record, self.status())

    def has_private_pid_ns(self) -> bool:
        namespaces = (self.config.get("linux") or {}).get("namespaces") or []
        return any(n.get("type") == "pid" and not n.get("path") for n in namespaces)
