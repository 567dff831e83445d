"""From OCI ``linux.cgroupsPath`` to a directory in each mounted hierarchy.

runtime-spec config-linux.md: an absolute cgroupsPath is relative to each hierarchy's root; a
relative one is relative to the cgroup the runtime itself is in (``/proc/self/cgroup``), which
on v1 can differ per hierarchy. Without a cgroupsPath the container gets ``/<id>``.
"""

import posixpath

from sampan import errdefs
from sampan.runtime.cgroups.fs import CgroupMount, hierarchy_key


def clean(cgroups_path: str | None, container_id: str) -> tuple[str, bool]:
    """Return (cleaned path, is_relative); ``..`` cannot climb above the starting cgroup."""
    if not cgroups_path:
        if not container_id or "/" in container_id:
            raise errdefs.InvalidParameter(f"invalid container id {container_id!r} for a cgroup")
        return "/" + container_id, False
    if not cgroups_path.startswith("/") and ":" in cgroups_path:
        raise errdefs.InvalidParameter(
            f"cgroupsPath {cgroups_path!r} is in the systemd form (slice:prefix:name): "
            "the systemd cgroup driver is not supported, use a path such as /sampan/<id>"
        )
    relative = not cgroups_path.startswith("/")
    # normpath of "/"+path drops any ".." that would climb above "/"
    cleaned = posixpath.normpath("/" + cgroups_path)
    if cleaned == "/":
        raise errdefs.InvalidParameter(f"cgroupsPath {cgroups_path!r} names the root cgroup")
    return cleaned, relative


def directory(mount: CgroupMount, cgroup: str) -> str:
    """The directory of ``cgroup`` (a path in the hierarchy) under ``mount``."""
    root = mount.root.rstrip("/")
    if root and (cgroup == root or cgroup.startswith(root + "/")):
        cgroup = cgroup[len(root) :] or "/"
    return posixpath.join(mount.mountpoint, cgroup.lstrip("/")).rstrip("/") or "/"


def cgroup_in(mount: CgroupMount, path: str, relative: bool, own: dict[str, str] | None) -> str:
    """The cgroup (path inside ``mount``'s hierarchy) the container uses."""
    if not relative:
        return path
    key = hierarchy_key(mount.controllers) if mount.version == 1 else ""
    base = (own or {}).get(key)
    if base is None:
        raise errdefs.Unavailable(
            f"cannot place a relative cgroupsPath: this process has no cgroup in the "
            f"{key or 'unified'} hierarchy"
        )
    return posixpath.join(base, path.lstrip("/"))
