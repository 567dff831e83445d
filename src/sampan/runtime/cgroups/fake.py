"""An in-memory :class:`~sampan.runtime.cgroups.fs.CgroupFs` that records what was done.

For unit tests: a new directory under a mount gets that mount's template of files, the way
the kernel populates a new cgroup; writes replace a file's content (``cgroup.procs`` appends)
and are recorded in :attr:`FakeCgroupFs.writes`. Nothing here touches the host.
"""

import errno
import posixpath
from collections.abc import Mapping

from sampan.runtime.cgroups.fs import CgroupMount, parse_mountinfo

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V2_MOUNTINFO = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

_V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.shares": "1024\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n",
            "cpu.rt_period_us": "1000000\n", "cpu.rt_runtime_us": "0\n", "cpu.idle": "0\n",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cpuacct.usage": "0\n", "cpuacct.usage_percpu": "0 0 \n",
                "cpuacct.stat": "user 0\nsystem 0\n",
                "cpuacct.usage_all": "cpu user system\n0 0 0\n1 0 0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n",
               "memory.memsw.limit_in_bytes": "9223372036854771712\n",
               "memory.soft_limit_in_bytes": "9223372036854771712\n",
               "memory.kmem.limit_in_bytes": "9223372036854771712\n",
               "memory.kmem.tcp.limit_in_bytes": "9223372036854771712\n",
               "memory.usage_in_bytes": "0\n", "memory.max_usage_in_bytes": "0\n",
               "memory.failcnt": "0\n", "memory.swappiness": "60\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.stat": "cache 0\nrss 0\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "blkio": {"blkio.bfq.weight": "100\n", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "Total 0\n",
              "blkio.throttle.io_serviced_recursive": "Total 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "9223372036854771712\n",
                "hugetlb.2MB.usage_in_bytes": "0\n", "hugetlb.2MB.max_usage_in_bytes": "0\n",
                "hugetlb.2MB.failcnt": "0\n"},
}  # fmt: skip

_V2_CORE = {
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.freeze": "0\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}

_V2_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.weight": "100\n", "cpu.max": "max 100000\n", "cpu.idle": "0\n",
            "cpu.max.burst": "0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.low": "0\n",
               "memory.current": "0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
               "memory.stat": "anon 0\nfile 0\n", "memory.swap.current": "0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "io": {"io.weight": "default 100\n", "io.max": "", "io.stat": ""},
    "hugetlb": {"hugetlb.2MB.max": "max\n", "hugetlb.2MB.current": "0\n",
                "hugetlb.2MB.events": "max 0\n"},
}  # fmt: skip


class FakeCgroupFs:
    """A recording in-memory cgroupfs; build one with :meth:`hybrid` or :meth:`v2`."""

    def __init__(self, mountinfo: str, own_cgroup: str = "0::/\n") -> None:
        self._mounts = parse_mountinfo(mountinfo)
        self._own = own_cgroup
        self.files: dict[str, str] = {}
        self.dirs: set[str] = set()
        self.writes: list[tuple[str, str]] = []
        self.killed: list[tuple[int, int]] = []
        self.device_programs: dict[str, bytes] = {}
        self.alive: set[int] = set()
        self.v2_controllers: set[str] = set()
        for mount in self._mounts:
            self._populate(mount.mountpoint, root=True)

    @classmethod
    def hybrid(cls, own_cgroup: str = "0::/\n", with_hugetlb_v1: bool = False) -> "FakeCgroupFs":
        """This host's layout: v1 controllers, cgroup2 at /sys/fs/cgroup/unified (hugetlb only)."""
        info = HYBRID_MOUNTINFO
        if with_hugetlb_v1:
            info += "42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
        fs = cls(info, own_cgroup)
        fs.v2_controllers = {"hugetlb"}
        fs.files["/sys/fs/cgroup/unified/cgroup.controllers"] = "hugetlb\n"
        return fs

    @classmethod
    def v2(cls, controllers: tuple[str, ...] = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids"),
           own_cgroup: str = "0::/\n") -> "FakeCgroupFs":  # fmt: skip
        fs = cls(V2_MOUNTINFO, own_cgroup)
        fs.v2_controllers = set(controllers)
        fs.files["/sys/fs/cgroup/cgroup.controllers"] = " ".join(controllers) + "\n"
        return fs

    # --- the CgroupFs protocol ---------------------------------------------------------

    def mounts(self) -> list[CgroupMount]:
        return list(self._mounts)

    def own_cgroups(self) -> dict[str, str]:
        from sampan.runtime.cgroups.fs import parse_proc_cgroup

        return parse_proc_cgroup(self._own)

    def read(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return self.files[path]

    def write(self, path: str, data: str) -> None:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.writes.append((path, data))
        name = posixpath.basename(path)
        directory = posixpath.dirname(path)
        if name == "cgroup.procs":
            self._move(int(data), directory)
        elif name == "cgroup.subtree_control":
            self._subtree_control(directory, data)
        elif name == "cgroup.freeze":
            frozen = data.strip() == "1"
            self.files[path] = data.strip() + "\n"
            self.files[posixpath.join(directory, "cgroup.events")] = (
                f"populated 0\nfrozen {int(frozen)}\n"
            )
        elif name == "cgroup.kill":
            for pid in self._procs_under(directory):
                self.killed.append((pid, 9))
        else:
            self.files[path] = data if data.endswith("\n") else data + "\n"

    def mkdir(self, path: str) -> None:
        if path in self.dirs:
            raise FileExistsError(errno.EEXIST, "File exists", path)
        if posixpath.dirname(path) not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self._populate(path, root=False)

    def rmdir(self, path: str) -> None:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if self.subdirs(path) or self.files.get(posixpath.join(path, "cgroup.procs"), "").split():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        self.dirs.discard(path)
        for name in [f for f in self.files if posixpath.dirname(f) == path]:
            del self.files[name]

    def listdir(self, path: str) -> list[str]:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        names = [posixpath.basename(f) for f in self.files if posixpath.dirname(f) == path]
        return names + self.subdirs(path)

    def subdirs(self, path: str) -> list[str]:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return sorted(posixpath.basename(d) for d in self.dirs if posixpath.dirname(d) == path)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def kill(self, pid: int, signal: int) -> None:
        if self.alive and pid not in self.alive:
            raise ProcessLookupError(errno.ESRCH, "No such process")
        self.killed.append((pid, signal))

    def set_device_program(self, path: str, insns: bytes) -> None:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.device_programs[path] = insns

    # --- helpers for tests -------------------------------------------------------------

    def written(self, path: str) -> list[str]:
        """Every value written to ``path``, in order."""
        return [data for p, data in self.writes if p == path]

    def _mount_of(self, path: str) -> CgroupMount:
        best = max(
            (
                m
                for m in self._mounts
                if path == m.mountpoint or path.startswith(m.mountpoint + "/")
            ),
            key=lambda m: len(m.mountpoint),
        )
        return best

    def _populate(self, path: str, root: bool) -> None:
        self.dirs.add(path)
        mount = self._mount_of(path)
        self.files[posixpath.join(path, "cgroup.procs")] = ""
        if mount.version == 1:
            for controller in mount.controllers:
                if root and controller == "freezer":
                    continue  # the root cgroup cannot be frozen and has no freezer.state
                for name, content in _V1_FILES.get(controller, {}).items():
                    self.files[posixpath.join(path, name)] = content
            return
        for name, content in _V2_CORE.items():
            self.files[posixpath.join(path, name)] = content
        if root:
            self.files[posixpath.join(path, "cgroup.controllers")] = " ".join(
                sorted(self.v2_controllers)
            )
            return
        parent = posixpath.dirname(path)
        enabled = self.files.get(posixpath.join(parent, "cgroup.subtree_control"), "").split()
        self.files[posixpath.join(path, "cgroup.controllers")] = " ".join(enabled) + "\n"
        for controller in enabled:
            self._add_controller_files(path, controller)

    def _add_controller_files(self, path: str, controller: str) -> None:
        for name, content in _V2_FILES.get(controller, {}).items():
            self.files.setdefault(posixpath.join(path, name), content)

    def _subtree_control(self, directory: str, data: str) -> None:
        available = self.files.get(posixpath.join(directory, "cgroup.controllers"), "").split()
        if not available and directory == self._mount_of(directory).mountpoint:
            available = sorted(self.v2_controllers)
        enabled = set(self.files[posixpath.join(directory, "cgroup.subtree_control")].split())
        for token in data.split():
            name = token[1:]
            if name not in available:
                raise OSError(errno.ENOENT, "No such file or directory", directory)
            if token.startswith("+"):
                enabled.add(name)
            else:
                enabled.discard(name)
        self.files[posixpath.join(directory, "cgroup.subtree_control")] = " ".join(sorted(enabled))
        for child in self.subdirs(directory):
            child_path = posixpath.join(directory, child)
            self.files[posixpath.join(child_path, "cgroup.controllers")] = " ".join(sorted(enabled))
            for controller in enabled:
                self._add_controller_files(child_path, controller)

    def _move(self, pid: int, directory: str) -> None:
        mount = self._mount_of(directory)
        for d in self.dirs:
            if self._mount_of(d) is mount:
                procs_path = posixpath.join(d, "cgroup.procs")
                procs = [p for p in self.files.get(procs_path, "").split() if p != str(pid)]
                self.files[procs_path] = "".join(f"{p}\n" for p in procs)
        self.files[posixpath.join(directory, "cgroup.procs")] += f"{pid}\n"

    def _procs_under(self, directory: str) -> list[int]:
        return [
            int(p)
            for d in self.dirs
            if d == directory or d.startswith(directory + "/")
            for p in self.files.get(posixpath.join(d, "cgroup.procs"), "").split()
        ]

    def set_file(self, path: str, content: str) -> None:
        """Give a file the content the kernel would show (stats, current limits)."""
        self.files[path] = content

    def set_files(self, directory: str, contents: Mapping[str, str]) -> None:
        for name, content in contents.items():
            self.files[posixpath.join(directory, name)] = content
