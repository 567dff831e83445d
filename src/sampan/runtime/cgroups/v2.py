"""cgroup v2: one directory in the unified hierarchy, controllers enabled from above.

File names and semantics: Documentation/admin-guide/cgroup-v2.rst. A controller's files appear
in a cgroup only when its parent lists the controller in ``cgroup.subtree_control``, and a
controller bound to a v1 hierarchy (a hybrid host) never appears at all. OCI values are
converted the way runc converts them, so the same config means the same limits everywhere.
"""


from __future__ import annotations

import posixpath
import signal as signals
from collections.abc import Callable, Mapping

from sampan import errdefs
from sampan.runtime.cgroups import devices, files
from sampan.runtime.cgroups.fs import CgroupFs
from sampan.runtime.cgroups.plan import (
    Write,
    device,
    entries,
    limit,
    number,
    page_size,
    section,
    text,
)

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_M = "linux.resources.memory"
_C = "linux.resources.cpu"
_B = "linux.resources.blockIO"
_MAX_U64 = 2**64 - 1
_NS_PER_US = 1000


def cpu_shares_to_weight(shares: int) -> int:
    """Map v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000] (runc's linear map)."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """Map v1 blkio.weight [10, 1000] onto v2 io.weight [1, 10000] (runc's linear map)."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_max(swap: int, memory: int | None) -> str:
    """memory.swap.max for an OCI ``swap`` (memory+swap, as in v1) and memory limit.

    v1's memsw counts memory plus swap; v2's swap.max counts swap alone.
    """
    if swap < 0:
        return "max"
    if memory is None or memory < 0:
        raise errdefs.InvalidParameter(
            f"{_M}.swap {swap} needs a memory limit: on cgroup v2 swap is limited apart from memory"
        )
    if swap < memory:
        raise errdefs.InvalidParameter(
            f"{_M}.swap {swap} (memory+swap) must not be below {_M}.limit {memory}"
        )
    return str(swap - memory)


def plan_memory(memory: Mapping[str, Any], current_max: Callable[[], int | None]) -> list[Write]:
    """memory.* writes; ``current_max`` reads memory.max (None: unlimited) for a swap-only update.

    v2 has no kernel-memory, swappiness or OOM-killer knobs: those requests are ignored, as
    runc ignores them.
    """
    steps: list[Write] = []
    mem = number(memory, "limit", _M)
    swap = number(memory, "swap", _M)
    if swap is not None:
        base = mem if mem is not None else (None if swap < 0 else current_max())
        steps.append(Write("memory", ("memory.swap.max",), swap_max(swap, base)))
    if mem is not None:
        steps.append(Write("memory", ("memory.max",), limit(mem)))
    reservation = number(memory, "reservation", _M)
    if reservation is not None:
        steps.append(Write("memory", ("memory.low",), limit(reservation)))
    return steps


def plan_cpu(cpu: Mapping[str, Any], current_quota: Callable[[], str]) -> list[Write]:
    """cpu.* and cpuset.* writes; ``current_quota`` reads the first field of cpu.max."""
    steps: list[Write] = []
    shares = number(cpu, "shares", _C)
    if shares is not None:
        steps.append(Write("cpu", ("cpu.weight",), str(cpu_shares_to_weight(shares))))
    quota = number(cpu, "quota", _C)
    period = number(cpu, "period", _C)
    # cpu.max is "$QUOTA $PERIOD"; "$QUOTA" alone keeps the period, so only a period change
    # needs the quota that is in force.
    if period is not None:
        q = limit(quota) if quota is not None else current_quota()
        steps.append(Write("cpu", ("cpu.max",), f"{q} {period}"))
    elif quota is not None:
        steps.append(Write("cpu", ("cpu.max",), limit(quota)))
    burst = number(cpu, "burst", _C)
    if burst is not None:
        steps.append(Write("cpu", ("cpu.max.burst",), str(burst)))
    if number(cpu, "realtimeRuntime", _C) is not None or number(cpu, "realtimePeriod", _C):
        raise errdefs.Unavailable(
            f"{_C}.realtimeRuntime/realtimePeriod have no cgroup v2 equivalent"
        )
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
    return [] if value is None else [Write("pids", ("pids.max",), limit(value))]


_IO_MAX_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def plan_io(blkio: Mapping[str, Any], has_bfq: Callable[[], bool]) -> list[Write]:
    """io.* writes. With the BFQ scheduler, io.bfq.weight takes blkio's own 1-1000 scale.

    ``leafWeight`` has no v2 equivalent and is ignored, as runc does.
    """
    steps: list[Write] = []
    weight = number(blkio, "weight", _B)
    devices_ = [
        (device(e, f"{_B}.weightDevice"), number(e, "weight", f"{_B}.weightDevice"))
        for e in entries(blkio, "weightDevice", _B)
    ]
    if weight is not None or any(w is not None for _, w in devices_):
        bfq = has_bfq()
        name = "io.bfq.weight" if bfq else "io.weight"

        def scale(w: int) -> int:
            return w if bfq else blkio_weight_to_io_weight(w)

        if weight is not None:
            steps.append(Write("io", (name,), str(scale(weight))))
        for dev, w in devices_:
            if w is not None:
                steps.append(Write("io", (name,), f"{dev} {scale(w)}"))
    for key, field in _IO_MAX_KEYS.items():
        for entry in entries(blkio, key, _B):
            rate = entry.get("rate", 0)
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
                raise errdefs.InvalidParameter(f"{_B}.{key} rate must be >= 0, not {rate!r}")
            # As in v1, rate 0 removes the limit; io.max spells that "max".
            value = str(rate) if rate else "max"
            steps.append(
                Write("io", ("io.max",), f"{device(entry, f'{_B}.{key}')} {field}={value}")
            )
    return steps


def plan_hugetlb(resources: Mapping[str, Any]) -> list[Write]:
    steps: list[Write] = []
    for entry in entries(resources, "hugepageLimits", "linux.resources"):
        value = entry.get("limit")
        if isinstance(value, bool) or not isinstance(value, int):
            raise errdefs.InvalidParameter(
                "linux.resources.hugepageLimits limit must be an integer"
            )
        steps.append(Write("hugetlb", (f"hugetlb.{page_size(entry)}.max",), limit(value)))
    return steps


def plan_unified(resources: Mapping[str, Any]) -> list[Write]:
    """``linux.resources.unified``: file name -> value, written as given."""
    steps: list[Write] = []
    for key, value in section(resources, "unified").items():
        if not key or "/" in key or key.startswith(".") or not isinstance(value, str):
            raise errdefs.InvalidParameter(f"linux.resources.unified has a bad entry {key!r}")
        prefix = key.split(".", 1)[0]
        steps.append(Write("" if prefix == "cgroup" else prefix, (key,), value))
    return steps


def plan(
    resources: Mapping[str, Any],
    current_max: Callable[[], int | None],
    current_quota: Callable[[], str],
    has_bfq: Callable[[], bool],
) -> list[Write]:
    """Every v2 file write for ``resources`` (only requested values); devices are separate."""
    steps = plan_memory(section(resources, "memory"), current_max)
    steps += plan_cpu(section(resources, "cpu"), current_quota)
    steps += plan_pids(section(resources, "pids"))
    steps += plan_io(section(resources, "blockIO"), has_bfq)
    steps += plan_hugetlb(resources)
    steps += plan_unified(resources)
    return steps


# --- stats -------------------------------------------------------------------------------


def cpu_stats(cpu_stat: str | None) -> dict[str, Any]:
    stat = files.parse_flat_keyed(cpu_stat or "")
    return {
        "usage": {
            "total": stat.get("usage_usec", 0) * _NS_PER_US,
            "percpu": [],
            "percpu_kernel": [],
            "percpu_user": [],
            "kernel": stat.get("system_usec", 0) * _NS_PER_US,
            "user": stat.get("user_usec", 0) * _NS_PER_US,
        },
        "throttling": {
            "periods": stat.get("nr_periods", 0),
            "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_usec", 0) * _NS_PER_US,
        },
    }


def memory_stats(read: Callable[[str], str | None]) -> dict[str, Any]:
    raw = files.parse_flat_keyed(read("memory.stat") or "")
    events = files.parse_flat_keyed(read("memory.events") or "")
    usage = {
        "limit": files.parse_uint(read("memory.max"), _MAX_U64),
        "usage": files.parse_uint(read("memory.current")),
        "max": files.parse_uint(read("memory.peak")),
        "failcnt": events.get("max", 0),
    }
    swap_events = files.parse_flat_keyed(read("memory.swap.events") or "")
    swap_limit = files.parse_uint(read("memory.swap.max"), _MAX_U64)
    # v1 reports memory+swap; runc adds memory to v2's swap-only numbers to match.
    if swap_limit != _MAX_U64 and usage["limit"] != _MAX_U64:
        swap_limit += usage["limit"]
    else:
        swap_limit = _MAX_U64
    swap = {
        "limit": swap_limit,
        "usage": files.parse_uint(read("memory.swap.current")) + usage["usage"],
        "max": files.parse_uint(read("memory.swap.peak")),
        "failcnt": swap_events.get("fail", 0),
    }
    return {
        "cache": raw.get("file", 0),
        "usage": usage,
        "swap": swap,
        "kernel": {"limit": 0, "usage": raw.get("kernel", 0), "max": 0, "failcnt": 0},
        "kernelTCP": {"limit": 0, "usage": raw.get("sock", 0), "max": 0, "failcnt": 0},
        "raw": raw,
    }


def io_stats(io_stat: str | None) -> dict[str, Any]:
    """Parse io.stat (``8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...``) into runc's blkio shape."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (io_stat or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for target, read_key, write_key in (
            (service_bytes, "rbytes", "wbytes"),
            (serviced, "rios", "wios"),
        ):
            for op, key in (("Read", read_key), ("Write", write_key)):
                if key in fields:
                    target.append(
                        {
                            "major": int(major),
                            "minor": int(minor),
                            "op": op,
                            "value": int(fields[key]),
                        }
                    )
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}


class V2Manager:
    """A container's cgroup in the unified hierarchy mounted at ``root``."""

    version = "v2"

    def __init__(self, fs: CgroupFs, path: str, root: str, *, enable_all: bool = True) -> None:
        self._fs = fs
        self.path = path
        self.root = root
        # Pure v2 enables every available controller at create (stats need memory/pids/io
        # even without limits). A hybrid host enables only what a request needs.
        self._enable_all = enable_all
        self._available: set[str] | None = None

    def _file(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def _ancestors(self) -> list[str]:
        """The cgroups from the hierarchy root down to the parent of ours."""
        rel = posixpath.relpath(self.path, self.root)
        result = [self.root]
        if rel in (".", ""):
            return []
        current = self.root
        for part in rel.split("/")[:-1]:
            current = posixpath.join(current, part)
            result.append(current)
        return result

    def enable_controllers(self, wanted: set[str] | None) -> None:
        """Enable ``wanted`` (None: all available) in every ancestor's cgroup.subtree_control.

        A failure (EBUSY: the ancestor has processes of its own and is not the root, the
        "no internal processes" rule) is not fatal here: a request for that controller then
        fails with a clear error.
        """
        for ancestor in self._ancestors():
            available = set(
                files.read(self._fs, posixpath.join(ancestor, "cgroup.controllers")).split()
            )
            control = posixpath.join(ancestor, "cgroup.subtree_control")
            enabled = set(files.read(self._fs, control).split())
            missing = (available if wanted is None else wanted & available) - enabled
            if not missing:
                continue
            try:
                self._fs.write(control, " ".join(f"+{c}" for c in sorted(missing)))
            except OSError:
                return
        self._available = None

    def available(self) -> set[str]:
        """Controllers whose files this cgroup has (its cgroup.controllers)."""
        if self._available is None:
            self._available = set(files.read(self._fs, self._file("cgroup.controllers")).split())
        return self._available

    def has(self, controller: str) -> bool:
        return controller in self.available()

    def create(self) -> None:
        files.make_dirs(self._fs, self.path, [])
        if self._enable_all:
            self.enable_controllers(None)

    def add_process(self, pid: int) -> None:
        files.write(self._fs, self._file("cgroup.procs"), str(pid))

    def _require(self, controller: str) -> None:
        if not controller or controller in self.available():
            return
        self.enable_controllers({controller})
        if controller not in self.available():
            present = ", ".join(sorted(self.available())) or "none"
            raise errdefs.Unavailable(
                f"cgroup controller {controller} is not available in {self.path} "
                f"(available: {present})"
            )

    def _current_max(self) -> int | None:
        value = files.read(self._fs, self._file("memory.max")).strip()
        return None if value == "max" else int(value)

    def _current_quota(self) -> str:
        return files.read(self._fs, self._file("cpu.max")).split()[0]

    def _has_bfq(self) -> bool:
        return self._fs.exists(self._file("io.bfq.weight"))

    def apply_resources(self, resources: Mapping[str, Any]) -> None:
        # Planning is lazy about the controllers it reads current values from, so check them
        # before any callback runs: each step's controller is required before it is planned.
        for controller in self._requested_controllers(resources):
            self._require(controller)
        for step in plan(resources, self._current_max, self._current_quota, self._has_bfq):
            self._require(step.controller)
            files.perform(self._fs, self.path, step)
        rules = entries(resources, "devices", "linux.resources")
        if rules:
            program = devices.compile_program(devices.parse_rules(rules))
            try:
                self._fs.set_device_program(self.path, program)
            except OSError as exc:
                raise files.os_error(exc, "cannot attach the device filter to", self.path) from exc

    @staticmethod
    def _requested_controllers(resources: Mapping[str, Any]) -> list[str]:
        wanted: list[str] = []
        memory = section(resources, "memory")
        if number(memory, "limit", _M) or number(memory, "swap", _M):
            wanted.append("memory")
        cpu = section(resources, "cpu")
        if number(cpu, "period", _C) and not number(cpu, "quota", _C):
            wanted.append("cpu")
        blkio = section(resources, "blockIO")
        if number(blkio, "weight", _B) or entries(blkio, "weightDevice", _B):
            wanted.append("io")
        return wanted

    def update(self, resources: Mapping[str, Any]) -> None:
        self.apply_resources(resources)

    # --- freezer -----------------------------------------------------------------------

    def _frozen_event(self) -> bool:
        events = files.parse_flat_keyed(files.read(self._fs, self._file("cgroup.events")))
        return events.get("frozen", 0) == 1

    def _set_freeze(self, value: str) -> None:
        path = self._file("cgroup.freeze")
        try:
            self._fs.write(path, value)
        except FileNotFoundError as exc:
            if not self._fs.exists(self.path):
                raise errdefs.NotFound(f"cgroup {self.path} does not exist") from exc
            raise errdefs.Unavailable(
                f"cgroup v2 freezer (cgroup.freeze) missing in {self.path}"
            ) from exc
        except OSError as exc:
            raise files.os_error(exc, f"cannot write {value!r} to", path) from exc

    def freeze(self) -> None:
        self._set_freeze("1")
        # cgroup.events says "frozen 1" once every task has stopped.
        if not files.wait_until(self._frozen_event, timeout=10.0):
            self._set_freeze("0")
            raise errdefs.Unavailable(f"cannot freeze cgroup {self.path}: still freezing")

    def thaw(self) -> None:
        self._set_freeze("0")
        if not files.wait_until(lambda: not self._frozen_event(), timeout=10.0):
            raise errdefs.Unavailable(f"cannot thaw cgroup {self.path}: an ancestor is frozen")

    def is_frozen(self) -> bool:
        content = files.read_optional(self._fs, self._file("cgroup.freeze"))
        return content is not None and content.strip() == "1"

    # --- processes ---------------------------------------------------------------------

    def pids(self) -> list[int]:
        return files.pids_under(self._fs, self.path)

    def kill_all(self, signal: int) -> None:
        # cgroup.kill (5.14+) SIGKILLs the whole subtree atomically, forks included.
        if signal == signals.SIGKILL and self._fs.exists(self._file("cgroup.kill")):
            files.write(self._fs, self._file("cgroup.kill"), "1")
            return
        frozen = False
        if not self.is_frozen():
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
        content = files.read_optional(self._fs, self._file("memory.events"))
        return files.parse_flat_keyed(content or "").get("oom_kill", 0)

    # --- stats -------------------------------------------------------------------------

    def _read(self, name: str) -> str | None:
        return files.read_optional(self._fs, self._file(name))

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        cpu_stat = self._read("cpu.stat")  # core file: usage even without the cpu controller
        if cpu_stat is not None:
            data["cpu"] = cpu_stats(cpu_stat)
        if self._fs.exists(self._file("memory.current")):
            data["memory"] = memory_stats(self._read)
        pids_current = self._read("pids.current")
        if pids_current is not None:
            data["pids"] = {
                "current": files.parse_uint(pids_current),
                "limit": files.parse_uint(self._read("pids.max")),
            }
        io_stat = self._read("io.stat")
        if io_stat is not None:
            data["blkio"] = io_stats(io_stat)
        hugetlb = self.hugetlb_stats()
        if hugetlb:
            data["hugetlb"] = hugetlb
        return data

    def hugetlb_stats(self) -> dict[str, Any]:
        try:
            names = self._fs.listdir(self.path)
        except OSError as exc:
            raise files.os_error(exc, "cannot list", self.path) from exc
        sizes = sorted(
            n.split(".")[1]
            for n in names
            if n.startswith("hugetlb.") and n.endswith(".current") and n.count(".") == 2
        )
        result: dict[str, Any] = {}
        for size in sizes:
            events = files.parse_flat_keyed(self._read(f"hugetlb.{size}.events") or "")
            result[size] = {
                "usage": files.parse_uint(self._read(f"hugetlb.{size}.current")),
                "max": 0,
                "failcnt": events.get("max", 0),
            }
        return result

    def destroy(self) -> None:
        files.remove_tree(self._fs, self.path)

    def to_state(self) -> dict[str, Any]:
        return {"version": self.version, "path": self.path, "root": self.root}
