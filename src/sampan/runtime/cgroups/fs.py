"""Where the cgroup hierarchies are mounted, and the one object that touches them.

Every cgroup manager reads and writes through a :class:`CgroupFs`, so the resource logic can be
unit-tested against :class:`~sampan.runtime.cgroups.fake.FakeCgroupFs` and only
:class:`HostCgroupFs` touches the kernel.

Which hierarchies exist comes from ``/proc/self/mountinfo`` (proc(5)): a ``cgroup`` line is one
v1 hierarchy whose super options name its controllers (``rw,cpu,cpuacct``) or its name
(``name=systemd``); a ``cgroup2`` line is the single unified hierarchy. A mount can be shadowed
by a later mount on the same path or an ancestor path (a test that mounts cgroup2 over
``/sys/fs/cgroup`` in a private mount namespace leaves the old v1 lines in mountinfo), so only
mounts that are still visible count.
"""


from __future__ import annotations

import collections
import errno
import os
import posixpath

# The v1 controllers the kernel knows (Documentation/admin-guide/cgroup-v1/). Anything else in a
# v1 mount's super options is an option (rw, clone_children, release_agent=...), not a controller.
V1_CONTROLLERS = frozenset(
    {
        "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
        "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug",
    }
)  # fmt: skip


# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Protocol

    class CgroupMount(NamedTuple):
        """One visible cgroup hierarchy mount."""

        mountpoint: str
        root: str  # the cgroup at the mountpoint ("/" unless bind-mounted or namespaced)
        version: int  # 1 or 2
        controllers: tuple[str, ...]  # v1: controllers and "name=..."; v2: ()

    class _MountLine(NamedTuple):
        mount_id: int
        parent_id: int
        root: str
        mountpoint: str
        fstype: str
        super_options: str
else:
    Protocol = object
    CgroupMount = collections.namedtuple("CgroupMount", "mountpoint root version controllers")
    _MountLine = collections.namedtuple(
        "_MountLine", "mount_id parent_id root mountpoint fstype super_options")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _parse_lines(text: str) -> list[_MountLine]:
    lines: list[_MountLine] = []
    for raw in text.splitlines():
        left, sep, right = raw.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        lines.append(
            _MountLine(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                fstype=tail[0],
                super_options=tail[2],
            )
        )
    return lines


def _covers(outer: str, inner: str) -> bool:
    """True if a mount at ``outer`` would hide the path ``inner``."""
    return outer == inner or outer == "/" or inner.startswith(outer + "/")


def _is_visible(
    line: _MountLine, everything: list[_MountLine], by_id: dict[int, _MountLine]
) -> bool:
    # A mount is visible when every mount covering its path is one of its own ancestors in
    # the mount tree. A covering mount outside that chain was stacked over the path later.
    chain = {line.mount_id}
    parent = by_id.get(line.parent_id)
    while parent is not None and parent.mount_id not in chain:
        chain.add(parent.mount_id)
        parent = by_id.get(parent.parent_id)
    return all(
        other.mount_id in chain
        for other in everything
        if _covers(other.mountpoint, line.mountpoint)
    )


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """Return the visible cgroup mounts listed in a ``/proc/<pid>/mountinfo`` text."""
    everything = _parse_lines(text)
    by_id = {m.mount_id: m for m in everything}
    mounts: list[CgroupMount] = []
    for line in everything:
        if line.fstype not in ("cgroup", "cgroup2") or not _is_visible(line, everything, by_id):
            continue
        if line.fstype == "cgroup2":
            mounts.append(CgroupMount(line.mountpoint, line.root, 2, ()))
            continue
        controllers = tuple(
            opt
            for opt in line.super_options.split(",")
            if opt in V1_CONTROLLERS or opt.startswith("name=")
        )
        mounts.append(CgroupMount(line.mountpoint, line.root, 1, controllers))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Parse ``/proc/<pid>/cgroup`` into {hierarchy key: cgroup path}.

    The key of a v1 hierarchy is its sorted, comma-joined controller list (``cpu,cpuacct``,
    ``name=systemd``); the unified hierarchy's key is ``""`` (its line is ``0::/path``).
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        result[hierarchy_key(tuple(c for c in controllers.split(",") if c))] = path
    return result


def hierarchy_key(controllers: tuple[str, ...]) -> str:
    """The key :func:`parse_proc_cgroup` uses for a hierarchy with ``controllers``."""
    return ",".join(sorted(controllers))


class CgroupFs(Protocol):
    """The side effects of cgroup management: cgroupfs files, mounts, signals, eBPF."""

    def mounts(self) -> list[CgroupMount]:
        """The visible cgroup hierarchies (from ``/proc/self/mountinfo``)."""
        ...

    def own_cgroups(self) -> dict[str, str]:
        """This process's cgroups, as :func:`parse_proc_cgroup` returns them."""
        ...

    def read(self, path: str) -> str: ...

    def write(self, path: str, data: str) -> None:
        """Write ``data`` to an existing file in one write(2); never creates files."""
        ...

    def mkdir(self, path: str) -> None:
        """Make one directory; raises FileExistsError / FileNotFoundError like os.mkdir."""
        ...

    def rmdir(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]:
        """Names of every entry (files and directories) in ``path``."""
        ...

    def subdirs(self, path: str) -> list[str]:
        """Names of the child directories (child cgroups) of ``path``."""
        ...

    def exists(self, path: str) -> bool: ...

    def kill(self, pid: int, signal: int) -> None:
        """Send ``signal`` to ``pid``; raises ProcessLookupError if it is gone."""
        ...

    def set_device_program(self, path: str, insns: bytes) -> None:
        """Attach a cgroup device eBPF program to the v2 cgroup ``path``, replacing ours."""
        ...


class HostCgroupFs:
    """The real :class:`CgroupFs`: this process's view of /proc and the mounted cgroupfs."""

    def __init__(self, proc: str = "/proc/self") -> None:
        self._proc = proc
        self._mounts: list[CgroupMount] | None = None

    def mounts(self) -> list[CgroupMount]:
        if self._mounts is None:
            self._mounts = parse_mountinfo(self.read(posixpath.join(self._proc, "mountinfo")))
        return self._mounts

    def own_cgroups(self) -> dict[str, str]:
        return parse_proc_cgroup(self.read(posixpath.join(self._proc, "cgroup")))

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def write(self, path: str, data: str) -> None:
        # cgroupfs acts on each write(2) separately, so the value goes in one call.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def subdirs(self, path: str) -> list[str]:
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def kill(self, pid: int, signal: int) -> None:
        os.kill(pid, signal)

    def set_device_program(self, path: str, insns: bytes) -> None:
        from sampan.kernel import bpf  # only v2 device control needs bpf(2)

        cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            old_ids = bpf.prog_query_device(cgroup_fd, path)
            prog_fd = bpf.prog_load_cgroup_device(insns, name="sampan_devices")
            try:
                bpf.prog_attach(cgroup_fd, prog_fd, path)
            finally:
                os.close(prog_fd)
            # The new filter is in place: drop the ones it replaces (an earlier apply/update).
            for prog_id in old_ids:
                try:
                    old_fd = bpf.prog_get_fd_by_id(prog_id)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        continue
                    raise
                try:
                    bpf.prog_detach(cgroup_fd, old_fd, path)
                finally:
                    os.close(old_fd)
        finally:
            os.close(cgroup_fd)
