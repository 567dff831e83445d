"""One cgroup manager interface for cgroup v1, v2 and hybrid hosts.

The runtime calls :func:`open_manager` when it creates a container (the hierarchy layout is
detected from ``/proc/self/mountinfo``), saves :meth:`CgroupManager.to_state` in the container
state, and later rebuilds the same manager with :func:`load_manager` for ``update``, ``pause``,
``events`` and ``delete``::

    manager = open_manager(spec_linux.get("cgroupsPath"), container_id)
    manager.create()
    manager.add_process(init_pid)
    manager.apply_resources(spec_linux.get("resources") or {})
    state["cgroups"] = manager.to_state()
    ...
    load_manager(state["cgroups"]).freeze()

Layouts:

* ``v2``: cgroup2 is mounted at ``/sys/fs/cgroup``; one directory, controllers enabled in the
  ancestors' ``cgroup.subtree_control``; device rules are an eBPF program.
* ``hybrid``: v1 hierarchies under ``/sys/fs/cgroup/<controller>`` plus cgroup2 at
  ``/sys/fs/cgroup/unified``; resources go to v1, and the process is also put in the unified
  hierarchy, as runc does.
* ``v1``: v1 hierarchies only.

Every side effect goes through a :class:`CgroupFs` (``HostCgroupFs`` unless one is passed).
"""


from __future__ import annotations

from collections.abc import Mapping

from sampan import errdefs
from sampan.runtime.cgroups.fs import CgroupFs, CgroupMount, HostCgroupFs

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object

__all__ = [
    "CgroupFs",
    "CgroupManager",
    "CgroupMount",
    "HostCgroupFs",
    "detect_version",
    "load_manager",
    "open_manager",
]

V2_MOUNTPOINT = "/sys/fs/cgroup"
HYBRID_UNIFIED_MOUNTPOINT = "/sys/fs/cgroup/unified"


class CgroupManager(Protocol):
    """A container's cgroup(s); implemented by V1Manager, V2Manager and HybridManager."""

    version: str  # "v1" | "v2" | "hybrid"

    def create(self) -> None:
        """Make the cgroup directories (parents too); idempotent."""
        ...

    def add_process(self, pid: int) -> None:
        """Move ``pid`` into the cgroup of every hierarchy."""
        ...

    def apply_resources(self, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``linux.resources``; values absent, null or 0 are not written.

        Raises ``errdefs.Unavailable`` naming the controller and path when a requested
        resource's controller is missing, ``errdefs.InvalidParameter`` for bad values.
        """
        ...

    def update(self, resources: Mapping[str, Any]) -> None:
        """``runc update``: absent, null or 0 means unchanged; the rest as apply_resources."""
        ...

    def freeze(self) -> None:
        """Freeze every process and wait until the kernel reports the cgroup frozen."""
        ...

    def thaw(self) -> None: ...

    def is_frozen(self) -> bool: ...

    def pids(self) -> list[int]:
        """Every pid (host pid namespace) in the cgroup and its descendants."""
        ...

    def stats(self) -> dict[str, Any]:
        """The ``data`` object of ``runc events --stats``; parts whose controller is missing
        are left out."""
        ...

    def oom_kill_count(self) -> int:
        """How many processes the OOM killer has killed in this cgroup."""
        ...

    def kill_all(self, signal: int) -> None:
        """Send ``signal`` to every process in the cgroup (``kill --all``)."""
        ...

    def destroy(self) -> None:
        """Remove the cgroup directories, children first; absent ones are ignored."""
        ...

    def to_state(self) -> dict[str, Any]:
        """A JSON-able description; :func:`load_manager` turns it back into a manager."""
        ...


def _layout(mounts: list[CgroupMount]) -> str:
    if any(m.version == 2 and m.mountpoint == V2_MOUNTPOINT for m in mounts):
        return "v2"
    if any(m.version == 1 and m.controllers for m in mounts):
        unified = any(m.version == 2 and m.mountpoint == HYBRID_UNIFIED_MOUNTPOINT for m in mounts)
        return "hybrid" if unified else "v1"
    if any(m.version == 2 for m in mounts):
        return "v2"
    raise errdefs.Unavailable("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")


def detect_version(fs: CgroupFs | None = None) -> str:
    """Return ``"v1"``, ``"v2"`` or ``"hybrid"`` for the hierarchies this process sees."""
    return _layout((fs or HostCgroupFs()).mounts())


def open_manager(
    cgroups_path: str | None, container_id: str, *, fs: CgroupFs | None = None
) -> CgroupManager:
    """The manager for a container's cgroup at OCI ``cgroupsPath`` (nothing is created yet)."""
    from sampan.runtime.cgroups import resolve

    fs = fs or HostCgroupFs()
    path, relative = resolve.clean(cgroups_path, container_id)
    mounts = fs.mounts()
    layout = _layout(mounts)
    own = fs.own_cgroups() if relative else None

    def unified_manager(mountpoint: str | None, enable_all: bool) -> Any:
        from sampan.runtime.cgroups.v2 import V2Manager

        mount = next(
            m
            for m in mounts
            if m.version == 2 and (mountpoint is None or m.mountpoint == mountpoint)
        )
        directory = resolve.directory(mount, resolve.cgroup_in(mount, path, relative, own))
        return V2Manager(fs, directory, mount.mountpoint, enable_all=enable_all)

    if layout == "v2":
        preferred = V2_MOUNTPOINT if any(m.mountpoint == V2_MOUNTPOINT for m in mounts) else None
        manager: CgroupManager = unified_manager(preferred, True)
        return manager

    from sampan.runtime.cgroups.v1 import V1Manager

    paths: dict[str, str] = {}
    for mount in mounts:
        if mount.version != 1:
            continue
        directory = resolve.directory(mount, resolve.cgroup_in(mount, path, relative, own))
        for controller in mount.controllers:
            paths.setdefault(controller, directory)
    v1 = V1Manager(fs, paths)
    if layout == "v1":
        return v1

    from sampan.runtime.cgroups.hybrid import HybridManager

    return HybridManager(v1, unified_manager(HYBRID_UNIFIED_MOUNTPOINT, False))


def load_manager(state: Mapping[str, Any], *, fs: CgroupFs | None = None) -> CgroupManager:
    """Rebuild the manager :meth:`CgroupManager.to_state` described."""
    fs = fs or HostCgroupFs()
    version = state.get("version")
    try:
        if version == "v2":
            from sampan.runtime.cgroups.v2 import V2Manager

            return V2Manager(fs, str(state["path"]), str(state["root"]))
        from sampan.runtime.cgroups.v1 import V1Manager

        paths = {str(k): str(v) for k, v in dict(state["paths"]).items()}
        if version == "v1":
            return V1Manager(fs, paths)
        if version == "hybrid":
            from sampan.runtime.cgroups.hybrid import HybridManager
            from sampan.runtime.cgroups.v2 import V2Manager

            unified = V2Manager(
                fs, str(state["unified"]), str(state["unified_root"]), enable_all=False
            )
            return HybridManager(V1Manager(fs, paths), unified)
    except (KeyError, TypeError, ValueError) as exc:
        raise errdefs.InvalidParameter(f"bad cgroup state {dict(state)!r}: {exc}") from exc
    raise errdefs.InvalidParameter(f"unknown cgroup version {version!r} in the container state")
