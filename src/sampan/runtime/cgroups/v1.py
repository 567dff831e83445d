"""cgroup v1: one directory per hierarchy (cpu, memory, pids, ...), one file per knob.

File names and semantics: Documentation/admin-guide/cgroup-v1/ (memory.rst, cpusets.rst,
freezer-subsystem.rst, devices.rst, blkio-controller.rst, pids.rst, hugetlb.rst) and
Documentation/scheduler/sched-bwc.rst for the CFS quota files.
"""


from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping

from sampan import errdefs
from sampan.runtime.cgroups import devices, files
from sampan.runtime.cgroups.fs import CgroupFs
from sampan.runtime.cgroups.plan import Write, device, entries, number, page_size, section, text

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_M = "linux.resources.memory"
_C = "linux.resources.cpu"
_B = "linux.resources.blockIO"


def plan_memory(memory: Mapping[str, Any], current_limit: Callable[[], int]) -> list[Write]:
    """memory.* writes; ``current_limit`` reads memory.limit_in_bytes when ordering matters.

    The kernel keeps ``memory.memsw.limit_in_bytes >= memory.limit_in_bytes`` at every
    moment and rejects a write that would break it, so when both change the order matters:
    raising swap first is safe when the new memsw limit is not below the current memory
    limit; otherwise lowering the memory limit first is.
    """
    steps: list[Write] = []
    mem = number(memory, "limit", _M)
    swap = number(memory, "swap", _M)
    if mem == -1 and swap is None:
        swap_step = Write("memory", ("memory.memsw.limit_in_bytes",), "-1", optional=True)
    elif swap is not None:
        swap_step = Write("memory", ("memory.memsw.limit_in_bytes",), str(swap))
    else:
        swap_step = None
    limit_step = None if mem is None else Write("memory", ("memory.limit_in_bytes",), str(mem))
    if swap_step is not None and limit_step is not None:
        swap_first = swap is None or swap < 0 or swap >= current_limit()
        steps += [swap_step, limit_step] if swap_first else [limit_step, swap_step]
    else:
        steps += [s for s in (limit_step, swap_step) if s is not None]
    reservation = number(memory, "reservation", _M)
    if reservation is not None:
        steps.append(Write("memory", ("memory.soft_limit_in_bytes",), str(reservation)))
    # Kernel memory limits are deprecated; newer kernels accept and ignore them, or lack the file.
    kernel = number(memory, "kernel", _M)
    if kernel is not None:
        steps.append(Write("memory", ("memory.kmem.limit_in_bytes",), str(kernel), True))
    kernel_tcp = number(memory, "kernelTCP", _M)
    if kernel_tcp is not None:
        steps.append(Write("memory", ("memory.kmem.tcp.limit_in_bytes",), str(kernel_tcp), True))
    swappiness = memory.get("swappiness")
    if swappiness is not None and not (isinstance(swappiness, int) and swappiness < 0):
        if not isinstance(swappiness, int) or isinstance(swappiness, bool) or swappiness > 100:
            raise errdefs.InvalidParameter(f"{_M}.swappiness must be 0 to 100, not {swappiness!r}")
        steps.append(Write("memory", ("memory.swappiness",), str(swappiness)))
    if memory.get("disableOOMKiller") is True:
        steps.append(Write("memory", ("memory.oom_control",), "1"))
    return steps


def plan_cpu(cpu: Mapping[str, Any]) -> list[Write]:
    steps: list[Write] = []
    shares = number(cpu, "shares", _C)
    if shares is not None:
        steps.append(Write("cpu", ("cpu.shares",), str(shares)))
    # Period before quota, as the kernel validates the quota against the period.
    period = number(cpu, "period", _C)
    if period is not None:
        steps.append(Write("cpu", ("cpu.cfs_period_us",), str(period)))
    quota = number(cpu, "quota", _C)
    if quota is not None:
        steps.append(Write("cpu", ("cpu.cfs_quota_us",), str(quota)))
    burst = number(cpu, "burst", _C)
    if burst is not None:
        steps.append(Write("cpu", ("cpu.cfs_burst_us",), str(burst)))
    rt_period = number(cpu, "realtimePeriod", _C)
    if rt_period is not None:
        steps.append(Write("cpu", ("cpu.rt_period_us",), str(rt_period)))
    rt_runtime = number(cpu, "realtimeRuntime", _C)
    if rt_runtime is not None:
        steps.append(Write("cpu", ("cpu.rt_runtime_us",), str(rt_runtime)))
    idle = number(cpu, "idle", _C)
    if idle is not None:
        steps.append(Write("cpu", ("cpu.idle",), str(idle)))
    cpus = text(cpu, "cpus", _C)
    if cpus is not None:
        steps.append(Write("cpuset", ("cpuset.cpus",), cpus))
    mems = text(cpu, "mems", _C)
    if mems is not None:
        steps.append(Write("cpuset", ("cpuset.mems",), mems))
    return steps


def plan_pids(pids: Mapping[str, Any]) -> list[Write]:
    value = number(pids, "limit", "linux.resources.pids")
    if value is None:
        return []
    return [Write("pids", ("pids.max",), "max" if value < 0 else str(value))]


_THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def plan_blkio(blkio: Mapping[str, Any]) -> list[Write]:
    # CFQ kernels have blkio.weight; since CFQ was removed (5.0) BFQ offers blkio.bfq.weight.
    steps: list[Write] = []
    weight = number(blkio, "weight", _B)
    if weight is not None:
        steps.append(Write("blkio", ("blkio.weight", "blkio.bfq.weight"), str(weight)))
    leaf = number(blkio, "leafWeight", _B)
    if leaf is not None:
        steps.append(Write("blkio", ("blkio.leaf_weight",), str(leaf)))
    for entry in entries(blkio, "weightDevice", _B):
        dev = device(entry, f"{_B}.weightDevice")
        w = number(entry, "weight", f"{_B}.weightDevice")
        if w is not None:
            files_ = ("blkio.weight_device", "blkio.bfq.weight_device")
            steps.append(Write("blkio", files_, f"{dev} {w}"))
        lw = number(entry, "leafWeight", f"{_B}.weightDevice")
        if lw is not None:
            steps.append(Write("blkio", ("blkio.leaf_weight_device",), f"{dev} {lw}"))
    for key, name in _THROTTLE_FILES.items():
        for entry in entries(blkio, key, _B):
            rate = entry.get("rate", 0)
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
                raise errdefs.InvalidParameter(f"{_B}.{key} rate must be >= 0, not {rate!r}")
            # Rate 0 removes the device's limit (blkio-controller.rst).
            steps.append(Write("blkio", (name,), f"{device(entry, f'{_B}.{key}')} {rate}"))
    return steps


def plan_hugetlb(resources: Mapping[str, Any]) -> list[Write]:
    steps: list[Write] = []
    for entry in entries(resources, "hugepageLimits", "linux.resources"):
        value = entry.get("limit")
        if isinstance(value, bool) or not isinstance(value, int):
            raise errdefs.InvalidParameter(
                "linux.resources.hugepageLimits limit must be an integer"
            )
        name = f"hugetlb.{page_size(entry)}.limit_in_bytes"
        steps.append(Write("hugetlb", (name,), str(value)))
    return steps


def plan_devices(resources: Mapping[str, Any]) -> list[Write]:
    raw = entries(resources, "devices", "linux.resources")
    return [
        Write(
            "devices", ("devices.allow" if rule.allow else "devices.deny",), devices.v1_line(rule)
        )
        for rule in devices.parse_rules(raw)
    ]


def plan(resources: Mapping[str, Any], current_limit: Callable[[], int]) -> list[Write]:
    """Every v1 write for ``resources`` (only requested values), in a safe order."""
    steps = plan_memory(section(resources, "memory"), current_limit)
    steps += plan_cpu(section(resources, "cpu"))
    steps += plan_pids(section(resources, "pids"))
    steps += plan_blkio(section(resources, "blockIO"))
    steps += plan_hugetlb(resources)
    steps += plan_devices(resources)
    return steps


# --- stats -------------------------------------------------------------------------------

_USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NS = 1_000_000_000


def _ints(content: str | None) -> list[int]:
    return [int(v) for v in content.split()] if content else []


def _percpu_columns(content: str | None) -> tuple[list[int], list[int]]:
    # cpuacct.usage_all: "cpu user system" header, then one line per cpu (ns).
    user: list[int] = []
    system: list[int] = []
    for line in (content or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            user.append(int(parts[1]))
            system.append(int(parts[2]))
    return user, system


def cpu_stats(cpuacct: Mapping[str, str | None], cpu_stat: str | None) -> dict[str, Any]:
    """The ``cpu`` part of runc's stats from cpuacct.* file contents and cpu.stat."""
    ticks = files.parse_flat_keyed(cpuacct.get("cpuacct.stat") or "")
    percpu_user, percpu_kernel = _percpu_columns(cpuacct.get("cpuacct.usage_all"))
    usage: dict[str, Any] = {
        "total": files.parse_uint(cpuacct.get("cpuacct.usage")),
        "percpu": _ints(cpuacct.get("cpuacct.usage_percpu")),
        "percpu_kernel": percpu_kernel,
        "percpu_user": percpu_user,
        # cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
        "kernel": ticks.get("system", 0) * _NS // _USER_HZ,
        "user": ticks.get("user", 0) * _NS // _USER_HZ,
    }
    throttle = files.parse_flat_keyed(cpu_stat or "")
    return {
        "usage": usage,
        "throttling": {
            "periods": throttle.get("nr_periods", 0),
            "throttledPeriods": throttle.get("nr_throttled", 0),
            "throttledTime": throttle.get("throttled_time", 0),
        },
    }


def memory_entry(read: Callable[[str], str | None], prefix: str) -> dict[str, int]:
    """usage/max/limit/failcnt of one memory counter family (``memory``, ``memory.memsw``...)."""
    return {
        "limit": files.parse_uint(read(f"{prefix}.limit_in_bytes")),
        "usage": files.parse_uint(read(f"{prefix}.usage_in_bytes")),
        "max": files.parse_uint(read(f"{prefix}.max_usage_in_bytes")),
        "failcnt": files.parse_uint(read(f"{prefix}.failcnt")),
    }


def memory_stats(read: Callable[[str], str | None]) -> dict[str, Any]:
    raw = files.parse_flat_keyed(read("memory.stat") or "")
    return {
        "cache": raw.get("total_cache", raw.get("cache", 0)),
        "usage": memory_entry(read, "memory"),
        "swap": memory_entry(read, "memory.memsw"),
        "kernel": memory_entry(read, "memory.kmem"),
        "kernelTCP": memory_entry(read, "memory.kmem.tcp"),
        "raw": raw,
    }


def blkio_entries(content: str | None) -> list[dict[str, Any]]:
    """Parse ``8:0 Read 4096`` lines (the ``Total N`` summary line is dropped)."""
    result: list[dict[str, Any]] = []
    for line in (content or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        result.append(
            {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
        )
    return result


class V1Manager:
    """A container's cgroup in every mounted v1 hierarchy."""

    version = "v1"

    def __init__(self, fs: CgroupFs, paths: Mapping[str, str]) -> None:
        # controller (or "name=systemd") -> the container's directory in that hierarchy
        self._fs = fs
        self._paths = dict(paths)

    @property
    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def _dirs(self) -> list[str]:
        return list(dict.fromkeys(self._paths.values()))

    def has(self, controller: str) -> bool:
        return controller in self._paths

    def _dir(self, controller: str) -> str:
        try:
            return self._paths[controller]
        except KeyError:
            raise errdefs.Unavailable(
                f"cgroup controller {controller} is not mounted (no v1 hierarchy has it)"
            ) from None

    def create(self) -> None:
        for directory in self._dirs():
            created: list[str] = []
            files.make_dirs(self._fs, directory, created)
            if self._paths.get("cpuset") == directory:
                self._inherit_cpuset(created)

    def _inherit_cpuset(self, created: list[str]) -> None:
        # A new v1 cpuset starts with empty cpuset.cpus/mems, and the kernel refuses to move a
        # task into it (ENOSPC) until both are set: copy the parent's, top-down.
        for directory in created:
            parent = posixpath.dirname(directory)
            for name in ("cpuset.cpus", "cpuset.mems"):
                path = posixpath.join(directory, name)
                if files.read(self._fs, path).strip():
                    continue
                value = files.read(self._fs, posixpath.join(parent, name)).strip()
                if value:
                    files.write(self._fs, path, value)

    def add_process(self, pid: int) -> None:
        for directory in self._dirs():
            files.write(self._fs, posixpath.join(directory, "cgroup.procs"), str(pid))

    def apply_resources(self, resources: Mapping[str, Any]) -> None:
        if section(resources, "unified"):
            raise errdefs.Unavailable(
                "linux.resources.unified needs cgroup v2, but this host only has cgroup v1"
            )
        self._perform(plan(resources, self._current_memory_limit))

    def update(self, resources: Mapping[str, Any]) -> None:
        # 0/null means "unchanged", which is exactly how planning treats "not requested".
        self.apply_resources(resources)

    def _current_memory_limit(self) -> int:
        path = posixpath.join(self._dir("memory"), "memory.limit_in_bytes")
        return files.parse_uint(files.read(self._fs, path))

    def _perform(self, steps: list[Write]) -> None:
        for step in steps:
            files.perform(self._fs, self._dir(step.controller), step)

    # --- freezer -----------------------------------------------------------------------

    def _freezer_state(self) -> str:
        path = posixpath.join(self._dir("freezer"), "freezer.state")
        return files.read(self._fs, path).strip()

    def freeze(self) -> None:
        path = posixpath.join(self._dir("freezer"), "freezer.state")
        files.write(self._fs, path, "FROZEN")

        # FREEZING turns into FROZEN once every task has stopped; a task in an uninterruptible
        # sleep can hold that up, so writing FROZEN again nudges the freezer.
        def frozen() -> bool:
            if self._freezer_state() == "FROZEN":
                return True
            files.write(self._fs, path, "FROZEN")
            return False

        if not files.wait_until(frozen, timeout=10.0):
            files.write(self._fs, path, "THAWED")
            raise errdefs.Unavailable(
                f"cannot freeze cgroup {self._dir('freezer')}: still freezing"
            )

    def thaw(self) -> None:
        path = posixpath.join(self._dir("freezer"), "freezer.state")
        files.write(self._fs, path, "THAWED")
        if not files.wait_until(lambda: self._freezer_state() == "THAWED", timeout=10.0):
            raise errdefs.Unavailable(f"cannot thaw cgroup {self._dir('freezer')}")

    def is_frozen(self) -> bool:
        if not self.has("freezer"):
            return False
        return self._freezer_state() == "FROZEN"

    # --- processes ---------------------------------------------------------------------

    def _process_dir(self) -> str:
        for controller in ("pids", "freezer", "memory", "devices", "cpu"):
            if controller in self._paths:
                return self._paths[controller]
        dirs = self._dirs()
        if not dirs:
            raise errdefs.Unavailable("no cgroup v1 hierarchy is mounted")
        return dirs[0]

    def pids(self) -> list[int]:
        return files.pids_under(self._fs, self._process_dir())

    def kill_all(self, signal: int) -> None:
        # Freeze first so that no process can fork a child we would miss (runc does the same).
        frozen = False
        if self.has("freezer") and not self.is_frozen():  # a paused container stays paused
            try:
                self.freeze()
                frozen = True
            except errdefs.SampanError:
                frozen = False
        try:
            for pid in self.pids():
                try:
                    self._fs.kill(pid, signal)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    def oom_kill_count(self) -> int:
        if not self.has("memory"):
            return 0
        path = posixpath.join(self._paths["memory"], "memory.oom_control")
        content = files.read_optional(self._fs, path)
        return files.parse_flat_keyed(content or "").get("oom_kill", 0)

    # --- stats -------------------------------------------------------------------------

    def _reader(self, controller: str) -> Callable[[str], str | None]:
        directory = self._paths[controller]
        return lambda name: files.read_optional(self._fs, posixpath.join(directory, name))

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.has("cpuacct") or self.has("cpu"):
            acct = self._reader("cpuacct") if self.has("cpuacct") else (lambda name: None)
            names = ("cpuacct.stat", "cpuacct.usage", "cpuacct.usage_percpu", "cpuacct.usage_all")
            cpu_stat = self._reader("cpu")("cpu.stat") if self.has("cpu") else None
            data["cpu"] = cpu_stats({n: acct(n) for n in names}, cpu_stat)
        if self.has("memory"):
            data["memory"] = memory_stats(self._reader("memory"))
        if self.has("pids"):
            read = self._reader("pids")
            data["pids"] = {
                "current": files.parse_uint(read("pids.current")),
                "limit": files.parse_uint(read("pids.max")),
            }
        if self.has("blkio"):
            data["blkio"] = self._blkio_stats()
        if self.has("hugetlb"):
            data["hugetlb"] = self._hugetlb_stats()
        return data

    def _blkio_stats(self) -> dict[str, Any]:
        read = self._reader("blkio")
        # The throttle files count every bio; the bfq ones only bios of BFQ-scheduled disks.
        result: dict[str, Any] = {}
        for key, suffix in (
            ("ioServiceBytesRecursive", "io_service_bytes_recursive"),
            ("ioServicedRecursive", "io_serviced_recursive"),
        ):
            content = read(f"blkio.throttle.{suffix}")
            if content is None:
                content = read(f"blkio.bfq.{suffix}") or read(f"blkio.{suffix}")
            result[key] = blkio_entries(content)
        return result

    def _hugetlb_stats(self) -> dict[str, Any]:
        directory = self._paths["hugetlb"]
        read = self._reader("hugetlb")
        sizes = sorted(
            name.split(".")[1]
            for name in self._fs.listdir(directory)
            if name.startswith("hugetlb.")
            and name.endswith(".limit_in_bytes")
            and name.count(".") == 2
        )
        return {
            size: {
                "usage": files.parse_uint(read(f"hugetlb.{size}.usage_in_bytes")),
                "max": files.parse_uint(read(f"hugetlb.{size}.max_usage_in_bytes")),
                "failcnt": files.parse_uint(read(f"hugetlb.{size}.failcnt")),
            }
            for size in sizes
        }

    def destroy(self) -> None:
        for directory in self._dirs():
            files.remove_tree(self._fs, directory)

    def to_state(self) -> dict[str, Any]:
        return {"version": self.version, "paths": dict(self._paths)}
