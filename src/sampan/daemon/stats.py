"""Container statistics from cgroup files (v1 and v2), shaped as Docker's ``StatsJSON``.

The container's cgroups are found from its init's ``/proc/<pid>/cgroup``, so the path the
runtime chose does not matter. Reads are plain file reads under an injectable root (tests
point ``sys_root``/``proc_root`` at a fake tree).
"""

from __future__ import annotations

import os
from typing import Any

from sampan.daemon.timefmt import ZERO_TIME, rfc3339_nano

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NANOS_PER_TICK = 1_000_000_000 // _CLK_TCK


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _int(path: str) -> int:
    text = _read(path).strip()
    if not text or text == "max":
        return 0
    try:
        return int(text.split()[0])
    except ValueError:
        return 0


def _keyed(path: str) -> dict[str, int]:
    values = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


class CgroupStats:
    def __init__(self, sys_root: str = "/sys/fs/cgroup", proc_root: str = "/proc") -> None:
        self._sys = sys_root
        self._proc = proc_root

    def cgroup_dirs(self, pid: int) -> dict[str, str]:
        """controller -> directory ("" key: the cgroup2 directory)."""
        dirs: dict[str, str] = {}
        for line in _read(f"{self._proc}/{pid}/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                unified = os.path.join(self._sys, "unified")
                base = unified if os.path.isdir(unified) else self._sys
                dirs[""] = base + path
                continue
            for controller in controllers.split(","):
                name = controller.removeprefix("name=")
                mount = os.path.join(self._sys, controllers)
                if not os.path.isdir(mount):
                    mount = os.path.join(self._sys, name)
                dirs[name] = mount + path
        return dirs

    def system_cpu_usage(self) -> int:
        for line in _read(f"{self._proc}/stat").splitlines():
            if line.startswith("cpu "):
                return sum(int(v) for v in line.split()[1:8]) * _NANOS_PER_TICK
        return 0

    def online_cpus(self) -> int:
        return os.cpu_count() or 1

    def sample(self, pid: int, now_ns: int) -> dict[str, Any]:
        """One sample: read, pids_stats, cpu_stats, memory_stats, blkio_stats."""
        dirs = self.cgroup_dirs(pid) if pid else {}
        v2 = dirs.get("")
        cpu_dir = dirs.get("cpuacct")
        memory_dir = dirs.get("memory")
        pids_dir = dirs.get("pids")
        cpu: dict[str, Any] = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                             "usage_in_usermode": 0},
                               "system_cpu_usage": self.system_cpu_usage(),
                               "online_cpus": self.online_cpus(),
                               "throttling_data": {"periods": 0, "throttled_periods": 0,
                                                   "throttled_time": 0}}
        memory: dict[str, Any] = {}
        pids: dict[str, Any] = {}
        if cpu_dir:
            usage = cpu["cpu_usage"]
            usage["total_usage"] = _int(f"{cpu_dir}/cpuacct.usage")
            percpu = _read(f"{cpu_dir}/cpuacct.usage_percpu").split()
            usage["percpu_usage"] = [int(v) for v in percpu if v.isdigit()]
            ticks = _keyed(f"{cpu_dir}/cpuacct.stat")
            usage["usage_in_usermode"] = ticks.get("user", 0) * _NANOS_PER_TICK
            usage["usage_in_kernelmode"] = ticks.get("system", 0) * _NANOS_PER_TICK
            cpu_ctl = dirs.get("cpu")
            if cpu_ctl:
                throttled = _keyed(f"{cpu_ctl}/cpu.stat")
                cpu["throttling_data"] = {"periods": throttled.get("nr_periods", 0),
                                          "throttled_periods": throttled.get("nr_throttled", 0),
                                          "throttled_time": throttled.get("throttled_time", 0)}
        elif v2 and os.path.exists(f"{v2}/cpu.stat"):
            stat = _keyed(f"{v2}/cpu.stat")
            cpu["cpu_usage"] = {"total_usage": stat.get("usage_usec", 0) * 1000,
                                "usage_in_usermode": stat.get("user_usec", 0) * 1000,
                                "usage_in_kernelmode": stat.get("system_usec", 0) * 1000}
        if memory_dir:
            stats = _keyed(f"{memory_dir}/memory.stat")
            memory = {"usage": _int(f"{memory_dir}/memory.usage_in_bytes"),
                      "max_usage": _int(f"{memory_dir}/memory.max_usage_in_bytes"),
                      "failcnt": _int(f"{memory_dir}/memory.failcnt"),
                      "stats": stats,
                      "limit": _int(f"{memory_dir}/memory.limit_in_bytes")}
        elif v2 and os.path.exists(f"{v2}/memory.current"):
            memory = {"usage": _int(f"{v2}/memory.current"),
                      "stats": _keyed(f"{v2}/memory.stat"),
                      "limit": _int(f"{v2}/memory.max") or _mem_total(self._proc)}
        if pids_dir:
            pids = {"current": _int(f"{pids_dir}/pids.current")}
            limit = _int(f"{pids_dir}/pids.max")
            if limit:
                pids["limit"] = limit
        elif v2 and os.path.exists(f"{v2}/pids.current"):
            pids = {"current": _int(f"{v2}/pids.current")}
        return {
            "read": rfc3339_nano(now_ns),
            "pids_stats": pids,
            "blkio_stats": {key: None for key in (
                "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                "io_time_recursive", "sectors_recursive")},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu,
            "memory_stats": memory,
        }


def _mem_total(proc: str) -> int:
    for line in _read(f"{proc}/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_json(current: dict[str, Any], previous: dict[str, Any] | None, name: str,
               container_id: str) -> dict[str, Any]:
    result = dict(current)
    result["preread"] = previous["read"] if previous else ZERO_TIME
    result["precpu_stats"] = previous["cpu_stats"] if previous else empty_cpu()
    result["name"] = name
    result["id"] = container_id
    return result
