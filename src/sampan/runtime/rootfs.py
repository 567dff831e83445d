"""Build the container's filesystem view inside its new mount namespace.

Runs in the container's init, before pivot_root, while the host's root is still reachable:
every OCI mount is made under the rootfs (destinations resolved with :func:`secure_join` so a
symlink in the image cannot send a mount onto the host), the default devices are created,
then the root is switched with pivot_root(2).
"""


from __future__ import annotations

import os
import stat

from sampan.kernel import mount as m
from sampan.runtime import mountopts
from sampan.runtime.paths import secure_join

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# runc's default device set (OCI runtime-spec "Default Devices"): type, path, major, minor, mode
DEFAULT_DEVICES: list[tuple[str, str, int, int, int]] = [
    ("c", "/dev/null", 1, 3, 0o666),
    ("c", "/dev/zero", 1, 5, 0o666),
    ("c", "/dev/full", 1, 7, 0o666),
    ("c", "/dev/random", 1, 8, 0o666),
    ("c", "/dev/urandom", 1, 9, 0o666),
    ("c", "/dev/tty", 5, 0, 0o666),
]

DEFAULT_DEV_LINKS: list[tuple[str, str]] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
]


_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def prepare_root(rootfs: str, propagation: str | None) -> None:
    """Make the host's mounts invisible to the host's propagation and rootfs a mount point.

    pivot_root(2) refuses a new root whose parent mount is shared, and mounts made under the
    rootfs must not propagate back to the host: so the whole tree becomes slave (or what
    rootfsPropagation asks) and the rootfs is bind-mounted onto itself.
    """
    flags = mountopts.propagation_flag(propagation) if propagation else m.MS_SLAVE | m.MS_REC
    m.mount(None, "/", None, flags)
    m.mount(rootfs, rootfs, "bind", m.MS_BIND | m.MS_REC)


def _ensure_target(source: str | None, target: str, is_bind: bool) -> None:
    if os.path.lexists(target):
        return
    if is_bind and source is not None and not stat.S_ISDIR(os.stat(source).st_mode):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(target, 0o755, exist_ok=True)


def _locked_flags(path: str) -> int:
    """Flags of the mount at ``path`` that a remount must keep (a user namespace locks them)."""
    st = os.statvfs(path)
    keep = 0
    for vfs_flag, ms_flag in (
        (os.ST_NOSUID, m.MS_NOSUID),
        (os.ST_NODEV, m.MS_NODEV),
        (os.ST_NOEXEC, m.MS_NOEXEC),
        (os.ST_RDONLY, m.MS_RDONLY),
    ):
        if st.f_flag & vfs_flag:
            keep |= ms_flag
    return keep


def remount_bind(target: str, flags: int) -> None:
    """Apply ro/nosuid/... to a bind mount, which mount(2) ignores on the first MS_BIND call."""
    remount = m.MS_BIND | m.MS_REMOUNT | (flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT))
    try:
        m.mount(None, target, None, remount)
    except PermissionError:
        m.mount(None, target, None, remount | _locked_flags(target))


def mount_one(rootfs: str, spec: dict[str, Any], cgroupns: bool) -> None:
    destination = spec["destination"]
    target = secure_join(rootfs, destination)
    options = mountopts.parse(list(spec.get("options") or []))
    fstype = spec.get("type") or ""
    source = spec.get("source")
    is_bind = fstype == "bind" or bool(options.flags & m.MS_BIND)
    if fstype == "cgroup" or fstype == "cgroup2":
        _mount_cgroups(rootfs, target, options, cgroupns)
        return
    if is_bind and source and not source.startswith("/"):
        source = os.path.abspath(source)
    _ensure_target(source, target, is_bind)
    if is_bind:
        m.mount(source, target, "bind", options.flags & (m.MS_BIND | m.MS_REC) | m.MS_BIND)
        if options.flags & ~(m.MS_BIND | m.MS_REC):
            remount_bind(target, options.flags)
    else:
        data = options.data or None
        try:
            m.mount(source or fstype, target, fstype, options.flags, data)
        except PermissionError:
            if fstype != "sysfs":
                raise
            # sysfs may only be mounted by the owner of the network namespace; inside a user
            # namespace without its own netns, bind the host's /sys read-only instead
            m.mount("/sys", target, "bind", m.MS_BIND | m.MS_REC)
            remount_bind(target, options.flags | m.MS_RDONLY)
    for flag in options.propagation:
        m.mount(None, target, None, flag)


def _host_cgroup_mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, root inside the hierarchy, fstype, super options) of the host's cgroups."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _source, super_options = right.split()[:3]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                found.append((fields[4], fields[3], fstype, super_options))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller list ("memory", "" for cgroup2, "name=systemd") -> our cgroup path."""
    own = {}
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
    return own


def _mount_cgroups(rootfs: str, target: str, options: mountopts.MountOptions,
                   cgroupns: bool) -> None:
    """Mount the container's own cgroups at ``target`` (its /sys/fs/cgroup).

    With a cgroup namespace a fresh mount shows the namespace's root. Without one, the
    container's own directories are bind-mounted from the host, as runc does on cgroup v1.
    """
    os.makedirs(target, 0o755, exist_ok=True)
    mounts = _host_cgroup_mounts()
    flags = options.flags | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC
    if any(point == "/sys/fs/cgroup" and fstype == "cgroup2" for point, _, fstype, _ in mounts):
        if cgroupns:
            m.mount("cgroup2", target, "cgroup2", flags)
        else:
            unified = _own_cgroups().get("", "/")
            m.mount("/sys/fs/cgroup" + unified, target, "bind", m.MS_BIND | m.MS_REC)
            remount_bind(target, flags)
        return
    m.mount("tmpfs", target, "tmpfs", m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC, "mode=755")
    own = _own_cgroups()
    for point, hierarchy_root, fstype, super_options in mounts:
        name = os.path.relpath(point, "/sys/fs/cgroup")
        sub_target = os.path.join(target, name)
        os.makedirs(sub_target, 0o755, exist_ok=True)
        if fstype == "cgroup2":
            controller_key = ""
        else:
            controller_key = next(
                (opt for opt in super_options.split(",")
                 if opt in own or opt.startswith("name=")), name)
        path = own.get(controller_key, "/")
        if cgroupns:
            data = None if fstype == "cgroup2" else ",".join(
                o for o in super_options.split(",") if o not in ("rw", "ro"))
            m.mount("cgroup", sub_target, fstype, flags, data)
        else:
            relative = os.path.relpath(path, hierarchy_root) if path.startswith(hierarchy_root) \
                else path.lstrip("/")
            m.mount(os.path.normpath(os.path.join(point, relative)), sub_target, "bind",
                    m.MS_BIND | m.MS_REC)
            remount_bind(sub_target, flags)
    for entry in os.listdir("/sys/fs/cgroup"):
        host_entry = os.path.join("/sys/fs/cgroup", entry)
        if os.path.islink(host_entry) and not os.path.lexists(os.path.join(target, entry)):
            os.symlink(os.readlink(host_entry), os.path.join(target, entry))
    if options.flags & m.MS_RDONLY:
        remount_bind(target, m.MS_RDONLY | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC)


def dev_is_bind_mounted(mounts: list[dict[str, Any]]) -> bool:
    for spec in mounts:
        if spec.get("destination", "").rstrip("/") == "/dev":
            opts = spec.get("options") or []
            return spec.get("type") == "bind" or "bind" in opts or "rbind" in opts
    return False


def create_devices(rootfs: str, devices: list[dict[str, Any]], in_user_ns: bool) -> None:
    """mknod the default and the configured devices (bind-mount them in a user namespace,
    where mknod(2) is not allowed)."""
    wanted: dict[str, tuple[str, int, int, int, int, int]] = {}
    for kind, path, major, minor, mode in DEFAULT_DEVICES:
        wanted[path] = (kind, major, minor, mode, 0, 0)
    for device in devices:
        wanted[device["path"]] = (
            device.get("type", "c"), int(device.get("major", 0)), int(device.get("minor", 0)),
            int(device.get("fileMode", 0o666)), int(device.get("uid", 0)),
            int(device.get("gid", 0)),
        )
    for path, (kind, major, minor, mode, uid, gid) in wanted.items():
        target = secure_join(rootfs, path)
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        if in_user_ns:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            m.mount(path, target, "bind", m.MS_BIND)
            continue
        type_bits = _NODE_TYPES[kind]
        try:
            os.mknod(target, type_bits | (mode & 0o7777), os.makedev(major, minor))
        except OSError as exc:
            raise OSError(exc.errno, f"mknod {path} ({kind} {major}:{minor}): "
                                     f"{exc.strerror}") from None
        os.chmod(target, mode & 0o7777)  # mknod(2) applies the umask
        os.chown(target, uid, gid)
    for source, link in DEFAULT_DEV_LINKS:
        target = secure_join(rootfs, link)
        if not os.path.lexists(target):
            os.symlink(source, target)
    if os.path.exists("/proc/kcore"):
        core = secure_join(rootfs, "/dev/core")
        if not os.path.lexists(core):
            os.symlink("/proc/kcore", core)


def pivot_root(rootfs: str) -> None:
    """Switch to the rootfs and detach the host's root from the namespace.

    pivot_root(".", ".") stacks the old root on top of the new one; after unmounting it
    (MNT_DETACH, once made slave so the unmount does not propagate to the host) nothing of
    the host's filesystem is reachable. chroot(2) alone would leave the host's root mounted
    in the namespace and escapable with a second chroot.
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        m.pivot_root(".", ".")
        os.fchdir(old_root)
        m.mount(None, ".", None, m.MS_SLAVE | m.MS_REC)
        m.umount(".", m.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs onto / and chroot into it (for ramfs roots)."""
    os.chdir(rootfs)
    m.mount(rootfs, "/", None, m.MS_MOVE)
    m.chroot(".")
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    """Hide each path: /dev/null over a file, an empty read-only tmpfs over a directory."""
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if is_dir:
            m.mount("tmpfs", path, "tmpfs", m.MS_RDONLY, None)
        else:
            m.mount("/dev/null", path, "bind", m.MS_BIND)


def make_readonly(paths: list[str]) -> None:
    for path in paths:
        if not os.path.lexists(path):
            continue
        m.mount(path, path, "bind", m.MS_BIND | m.MS_REC)
        remount_bind(path, m.MS_RDONLY | m.MS_REC)


def make_root_readonly() -> None:
    remount_bind("/", m.MS_RDONLY)
