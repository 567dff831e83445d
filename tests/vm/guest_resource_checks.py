"""sampan-runc's resource behaviour on a pure cgroup v2 host; runs INSIDE the test VM.

tests/vm/boot.py boots a VM whose only cgroup hierarchy is cgroup2 (every controller: cpu,
memory, pids, io, cpuset, hugetlb) and runs this script there, as root, on this checkout (the
host's / is the guest's read-only root; /run is the guest's tmpfs). Each check drives
``bin/sampan-runc`` as a shim would and reads what the kernel enforces and what the v2 files
say. Output: one JSON line per check, ``{"check": name, "ok": bool, "detail": ...}``, then
``SAMPAN-VM-DONE``. tests/privileged/test_runtime_cgroup_v2_vm.py turns each line into a test.

Stdlib only (no pytest): the config shapes and the runtime runner come from
tests/runtime_harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1 << 20
CGROUP_ROOT = Path("/sys/fs/cgroup")
TIMEOUT = 90.0  # software-emulated CPU: generous waits (never asserted as timings)

# What the host-side test expects, in order; each is a function below named check_<name>.
CHECK_NAMES = (
    "cgroup2_is_the_only_hierarchy",
    "container_is_placed_in_its_v2_cgroup",
    "memory_limit_oom_kills_a_hog_and_events_reports_it",
    "oom_kill_of_the_init_is_reported_before_events_ends",
    "pids_limit_caps_a_fork_loop",
    "cpu_io_memory_hugetlb_settings_land_in_v2_files",
    "update_flags_change_the_limits",
    "update_resources_from_stdin_as_containerd_sends_them",
    "pause_and_resume_through_cgroup_freeze",
    "events_stats_has_cpu_memory_pids_numbers_from_v2_files",
    "device_rules_are_enforced_by_ebpf",
    "delete_removes_the_cgroup",
)


class CheckFailed(AssertionError):
    pass


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(path: Path) -> str:
    return path.read_text().strip()


def flat_keyed(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def out(bundle: Path) -> str:
    try:
        return (bundle / "out").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def v2_cgroup(pid: int) -> Path:
    """The process's cgroup directory; on a pure v2 host /proc/<pid>/cgroup is one 0:: line."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    expect(len(lines) == 1 and lines[0].startswith("0::/"),
           f"/proc/{pid}/cgroup is not a single v2 line: {lines}")
    return CGROUP_ROOT / lines[0][4:]


def block_device() -> tuple[int, int]:
    """major:minor of the VM's virtio disk (boot.py attaches one)."""
    major, minor = read(Path("/sys/block/vda/dev")).split(":")
    return int(major), int(minor)


class Checks:
    def __init__(self, harness: Any, runtime: str, base_config: Callable[..., dict[str, Any]],
                 unique: Callable[..., str]) -> None:
        self.h = harness
        self.runtime = runtime
        self.base_config = base_config
        self.unique = unique

    # --- helpers -----------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [self.runtime, "--root", str(self.h.root), "--log", str(self.h.log),
                "--log-format", "json", *args]

    def runc(self, *args: str, input: bytes | None = None,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = self.h.runtime(*args, input=input, timeout=TIMEOUT,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise CheckFailed(f"sampan-runc {' '.join(args)} failed ({result.returncode}): "
                              f"{result.stderr.decode(errors='replace')}")
        return result

    def state(self, container_id: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.runc("state", container_id).stdout)
        return state

    def start(self, args: list[str], resources: dict[str, Any] | None = None,
              config: dict[str, Any] | None = None) -> tuple[str, Path, int]:
        """create + start; the container's stdout+stderr go to <bundle>/out."""
        config = config or self.base_config(args)
        config["linux"]["resources"].update(resources or {})
        bundle = self.h.bundle(config)
        container_id = self.unique("c")
        with open(bundle / "out", "ab") as output:
            created = subprocess.run(
                self.argv("create", "--bundle", str(bundle), "--pid-file",
                          str(bundle / "init.pid"), container_id),
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                timeout=TIMEOUT)
        expect(created.returncode == 0, f"create failed: {out(bundle)}")
        self.runc("start", container_id)
        return container_id, bundle, int((bundle / "init.pid").read_text())

    def stats(self, container_id: str) -> dict[str, Any]:
        event = json.loads(self.runc("events", "--stats", container_id).stdout)
        expect(event["type"] == "stats" and event["id"] == container_id, f"bad event {event}")
        data: dict[str, Any] = event["data"]
        return data

    def events(self, container_id: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv("events", "--interval", "10s", container_id),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    @staticmethod
    def read_events_until(events: subprocess.Popen[bytes],
                          wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """JSON lines from a running `events` until one is ``wanted`` (all lines so far)."""
        assert events.stdout is not None
        fd = events.stdout.fileno()
        buffer = b""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"no wanted event in {seen}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise CheckFailed(f"events ended without the wanted event: {seen}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                seen.append(json.loads(line))
                if wanted(seen[-1]):
                    return seen

    # --- checks ------------------------------------------------------------------------

    def check_cgroup2_is_the_only_hierarchy(self) -> dict[str, Any]:
        mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
        cgroup_mounts = [(m[1], m[2]) for m in mounts if m[2].startswith("cgroup")]
        expect(cgroup_mounts == [("/sys/fs/cgroup", "cgroup2")], f"mounts: {cgroup_mounts}")
        controllers = read(CGROUP_ROOT / "cgroup.controllers").split()
        for name in ("cpu", "memory", "pids", "io", "cpuset"):
            expect(name in controllers, f"{name} missing from cgroup.controllers {controllers}")
        from sampan.runtime.cgroups import detect_version

        expect(detect_version() == "v2", f"detect_version() says {detect_version()}")
        return {"controllers": controllers, "kernel": os.uname().release}

    def check_container_is_placed_in_its_v2_cgroup(self) -> dict[str, Any]:
        container_id, bundle, pid = self.start(
            ["sh", "-c", "cat /proc/self/cgroup; exec sleep 1000"])
        record = json.loads((self.h.root / container_id / "state.json").read_text())
        expect(record["cgroup"]["version"] == "v2", f"state cgroup: {record['cgroup']}")
        expected = f"/{self.h.cgroup_parent}/{bundle.name}"
        cgroup = v2_cgroup(pid)
        expect(cgroup == CGROUP_ROOT / expected.lstrip("/"), f"cgroup {cgroup}")
        expect(read(cgroup / "cgroup.procs").split() == [str(pid)], "cgroup.procs")
        # every controller the host offers is enabled for the container's cgroup
        controllers = read(cgroup / "cgroup.controllers").split()
        for name in ("cpu", "memory", "pids", "io"):
            expect(name in controllers, f"{name} not enabled: {controllers}")
        wait_until(lambda: "0::" in out(bundle), "the container's /proc/self/cgroup")
        expect(out(bundle).splitlines() == [f"0::{expected}"], f"inside: {out(bundle)!r}")
        self.runc("delete", "--force", container_id)
        return {"cgroup": str(cgroup), "controllers": controllers}

    def check_memory_limit_oom_kills_a_hog_and_events_reports_it(self) -> dict[str, Any]:
        # The hog (a child of the init) waits for /tmp/go so that `events` is watching before
        # memory is allocated; the container survives it, so the OOM is reported while running.
        hog = ("while [ ! -e /tmp/go ]; do sleep 0.02; done; (x=a; while :; do x=$x$x; done); "
               "echo hog-exit=$?; exec sleep 1000")
        limit = 32 * MiB
        container_id, bundle, pid = self.start(
            ["sh", "-c", hog], {"memory": {"limit": limit, "swap": limit}})
        cgroup = v2_cgroup(pid)
        expect(int(read(cgroup / "memory.max")) == limit, "memory.max")
        swap = cgroup / "memory.swap.max"
        expect(not swap.exists() or read(swap) == "0", f"memory.swap.max {read(swap)}")
        with self.events(container_id) as events:
            try:
                # the first stats line says events is watching (its OOM baseline is read)
                self.read_events_until(events, lambda e: e["type"] == "stats")
                (bundle / "rootfs" / "tmp" / "go").touch()
                seen = self.read_events_until(events, lambda e: e["type"] == "oom")
                expect(seen[-1] == {"type": "oom", "id": container_id}, f"event {seen[-1]}")
                text = wait_until(lambda: "hog-exit=" in out(bundle) and out(bundle),
                                  "the hog to be killed")
                expect("hog-exit=137" in text, f"hog output: {text}")  # 128 + SIGKILL
                expect(self.state(container_id)["status"] == "running", "state")
                self.runc("kill", container_id, "KILL")
                _, errors = events.communicate(timeout=TIMEOUT)
            finally:
                if events.poll() is None:
                    events.kill()
        expect(events.returncode == 0, f"events: {errors!r}")
        memory_events = flat_keyed(cgroup / "memory.events")
        expect(memory_events["oom_kill"] >= 1, f"memory.events {memory_events}")
        wait_until(lambda: not alive(pid), "the init to die")
        self.runc("delete", container_id)
        return {"memory.events": memory_events}

    def check_oom_kill_of_the_init_is_reported_before_events_ends(self) -> dict[str, Any]:
        hog = "while [ ! -e /tmp/go ]; do sleep 0.02; done; x=a; while :; do x=$x$x; done"
        container_id, bundle, pid = self.start(
            ["sh", "-c", hog], {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
        with self.events(container_id) as events:
            try:
                self.read_events_until(events, lambda e: e["type"] == "stats")
                (bundle / "rootfs" / "tmp" / "go").touch()
                # the OOM killer kills the init: the container stops, events ends by itself
                remaining, errors = events.communicate(timeout=TIMEOUT)
            finally:
                if events.poll() is None:
                    events.kill()
        expect(events.returncode == 0, f"events: {errors!r}")
        lines = [json.loads(line) for line in remaining.splitlines()]
        expect({"type": "oom", "id": container_id} in lines, f"events: {lines}")
        expect(not alive(pid), "the init is alive")
        expect(self.state(container_id)["status"] == "stopped", "state")
        self.runc("delete", container_id)
        return {"events": [e["type"] for e in lines]}

    def check_pids_limit_caps_a_fork_loop(self) -> dict[str, Any]:
        limit = 8
        # A worker subshell forks `sleep` children until fork(2) fails with EAGAIN (busybox sh
        # then gives up: "can't fork"); the init (pid 1) waits for it and reports.
        script = ("(i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); echo started-$i; "
                  "done); echo worker-exit=$?; exec sleep 1000")
        container_id, bundle, pid = self.start(["sh", "-c", script], {"pids": {"limit": limit}})
        cgroup = v2_cgroup(pid)
        expect(read(cgroup / "pids.max") == str(limit), "pids.max")
        text = wait_until(lambda: "worker-exit=" in out(bundle) and out(bundle),
                          "the fork loop to end")
        expect("can't fork" in text, f"output: {text}")
        started = [line for line in text.splitlines() if line.startswith("started-")]
        # init + worker + sleeps = limit: the worker could start limit-2 children, no more
        expect(len(started) == limit - 2, f"started {len(started)}: {text}")
        wait_until(lambda: int(read(cgroup / "pids.current")) == limit - 1,
                   "the worker to be gone")
        processes = json.loads(self.runc("ps", "--format", "json", container_id).stdout)
        expect(len(processes) == limit - 1, f"ps: {processes}")
        pids_events = flat_keyed(cgroup / "pids.events")
        expect(pids_events["max"] > 0, f"pids.events {pids_events}")  # forks were refused
        stats = self.stats(container_id)["pids"]
        expect(stats == {"current": limit - 1, "limit": limit}, f"stats pids {stats}")
        self.runc("delete", "--force", container_id)
        return {"started": len(started), "pids.events": pids_events}

    def check_cpu_io_memory_hugetlb_settings_land_in_v2_files(self) -> dict[str, Any]:
        major, minor = block_device()
        resources = {
            "cpu": {"shares": 512, "quota": 30000, "period": 60000, "cpus": "0", "mems": "0"},
            "blockIO": {
                "weight": 300,
                "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 * MiB}],
                "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
            },
            "memory": {"limit": 96 * MiB, "reservation": 48 * MiB},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        }
        container_id, _, pid = self.start(["sleep", "1000"], resources)
        cgroup = v2_cgroup(pid)
        found = {name: read(cgroup / name) for name in (
            "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.low",
            "io.max", "hugetlb.2MB.max")}
        weight_file = "io.bfq.weight" if (cgroup / "io.bfq.weight").exists() else "io.weight"
        found[weight_file] = read(cgroup / weight_file)
        # runc's maps: shares 512 -> weight 1 + (510 * 9999) // 262142 = 20; blkio weight 300
        # -> io.weight 1 + (290 * 9999) // 990 = 2930 (io.bfq.weight keeps 300)
        expect(found["cpu.weight"] == "20", f"cpu.weight {found}")
        expect(found["cpu.max"] == "30000 60000", f"cpu.max {found}")
        expect(found["cpuset.cpus"] == "0" and found["cpuset.mems"] == "0", f"cpuset {found}")
        expect(int(found["memory.max"]) == 96 * MiB, f"memory.max {found}")
        expect(int(found["memory.low"]) == 48 * MiB, f"memory.low {found}")
        expect(found["io.max"] == f"{major}:{minor} rbps={MiB} wbps=max riops=max wiops=100",
               f"io.max {found}")
        expected_weight = "300" if weight_file == "io.bfq.weight" else "2930"
        expect(found[weight_file].splitlines()[0] == f"default {expected_weight}",
               f"{weight_file} {found}")
        expect(int(found["hugetlb.2MB.max"]) == 4 * MiB, f"hugetlb {found}")
        expect(self.state(container_id)["status"] == "running", "state")
        self.runc("delete", "--force", container_id)
        return found

    def check_update_flags_change_the_limits(self) -> dict[str, Any]:
        container_id, _, pid = self.start(
            ["sleep", "1000"],
            {"memory": {"limit": 64 * MiB}, "cpu": {"quota": 20000, "period": 100000},
             "pids": {"limit": 20}})
        cgroup = v2_cgroup(pid)
        self.runc("update", "--memory", "80m", "--cpu-quota", "40000", "--pids-limit", "30",
                  container_id)
        first = {n: read(cgroup / n) for n in ("memory.max", "cpu.max", "pids.max")}
        expect(int(first["memory.max"]) == 80 * MiB, f"after update: {first}")
        expect(first["cpu.max"] == "40000 100000", f"after update: {first}")
        expect(first["pids.max"] == "30", f"after update: {first}")
        self.runc("update", "--cpu-shares", "256", "--cpu-period", "50000", container_id)
        second = {n: read(cgroup / n) for n in ("cpu.weight", "cpu.max", "memory.max")}
        # shares 256 -> cpu.weight 1 + (254 * 9999) // 262142 = 10
        expect(second["cpu.weight"] == "10", f"after second update: {second}")
        expect(second["cpu.max"] == "40000 50000", f"after second update: {second}")
        expect(int(second["memory.max"]) == 80 * MiB, f"memory untouched: {second}")
        self.runc("delete", "--force", container_id)
        return {"after --memory/--cpu-quota/--pids-limit": first,
                "after --cpu-shares/--cpu-period": second}

    def check_update_resources_from_stdin_as_containerd_sends_them(self) -> dict[str, Any]:
        container_id, _, pid = self.start(
            ["sleep", "1000"],
            {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}, "pids": {"limit": 20},
             "cpu": {"shares": 1024}})
        cgroup = v2_cgroup(pid)
        names = ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max")

        def files() -> dict[str, str]:
            return {n: read(cgroup / n) for n in names if (cgroup / n).exists()}

        before = files()
        # `docker update --cpus 0.5 --pids-limit 50`: zero fields mean "unchanged"
        cpus = (b'{"memory":{"limit":0,"reservation":0,"kernel":0},"cpu":{"shares":0,'
                b'"quota":50000,"period":100000},"pids":{"limit":50},"blockIO":{"weight":0}}')
        self.runc("update", "--resources", "-", container_id, input=cpus)
        first = files()
        expect(int(first["memory.max"]) == 64 * MiB, f"memory changed: {first}")
        expect(first["cpu.max"] == "50000 100000", f"cpu.max {first}")
        expect(first["cpu.weight"] == before["cpu.weight"], f"cpu.weight changed: {first}")
        expect(first["pids.max"] == "50", f"pids.max {first}")
        # `docker update --memory 96m --memory-swap 192m`: v2's swap.max is swap alone
        mem = (b'{"memory":{"limit":100663296,"reservation":0,"swap":201326592,"kernel":0},'
               b'"cpu":{"shares":0,"quota":0,"period":0},"blockIO":{"weight":0}}')
        self.runc("update", "-r", "-", container_id, input=mem)
        second = files()
        expect(int(second["memory.max"]) == 96 * MiB, f"memory.max {second}")
        if "memory.swap.max" in second:
            expect(int(second["memory.swap.max"]) == 96 * MiB, f"memory.swap.max {second}")
        expect(second["cpu.max"] == "50000 100000", f"cpu.max changed: {second}")
        expect(second["pids.max"] == "50", f"pids.max changed: {second}")
        self.runc("delete", "--force", container_id)
        return {"before": before, "after cpus/pids": first, "after memory/swap": second}

    def check_pause_and_resume_through_cgroup_freeze(self) -> dict[str, Any]:
        # a counter in the init and one in a child
        counter = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count-$1; sleep 0.01; done"
        script = f"sh -c '{counter}' _ child & set -- init; {counter}"
        container_id, bundle, pid = self.start(["sh", "-c", script])
        tmp = bundle / "rootfs" / "tmp"

        def count(name: str) -> int:
            path = tmp / f"count-{name}"
            text = path.read_text().strip() if path.exists() else ""
            return int(text) if text.isdigit() else -1

        wait_until(lambda: count("init") > 0 and count("child") > 0, "both counters to run")
        cgroup = v2_cgroup(pid)
        self.runc("pause", container_id)
        expect(self.state(container_id)["status"] == "paused", "state after pause")
        expect(read(cgroup / "cgroup.freeze") == "1", "cgroup.freeze after pause")
        expect("frozen 1" in read(cgroup / "cgroup.events").splitlines(), "cgroup.events")
        frozen = (count("init"), count("child"))
        time.sleep(1.0)
        expect((count("init"), count("child")) == frozen, "counters moved while paused")
        expect(self.runc("pause", container_id, check=False).returncode == 1,
               "pausing twice succeeded")
        self.runc("resume", container_id)
        expect(self.state(container_id)["status"] == "running", "state after resume")
        expect(read(cgroup / "cgroup.freeze") == "0", "cgroup.freeze after resume")
        wait_until(lambda: count("init") > frozen[0] and count("child") > frozen[1],
                   "both counters to advance after resume")
        again = self.runc("resume", container_id, check=False)
        expect(again.returncode == 1 and b"not paused" in again.stderr, "resuming twice")
        # delete --force of a paused container thaws and kills it
        self.runc("pause", container_id)
        self.runc("delete", "--force", container_id)
        expect(not alive(pid), "paused init survived delete --force")
        expect(not cgroup.exists(), "cgroup left after delete --force of a paused container")
        return {"frozen_at": frozen}

    def check_events_stats_has_cpu_memory_pids_numbers_from_v2_files(self) -> dict[str, Any]:
        # burn a little cpu and hold some memory, then idle
        script = ("x=$(head -c 4000000 /dev/zero | tr '\\0' a); i=0; "
                  "while [ $i -lt 20000 ]; do i=$((i+1)); done; echo busy-done; "
                  "exec sleep 1000")
        container_id, bundle, pid = self.start(
            ["sh", "-c", script], {"memory": {"limit": 128 * MiB}, "pids": {"limit": 50}})
        wait_until(lambda: "busy-done" in out(bundle), "the busy loop")
        data = self.stats(container_id)
        cgroup = v2_cgroup(pid)
        usage = data["cpu"]["usage"]
        expect(usage["total"] > 0 and usage["user"] + usage["kernel"] > 0, f"cpu {usage}")
        cpu_stat = flat_keyed(cgroup / "cpu.stat")
        expect(usage["total"] <= cpu_stat["usage_usec"] * 1000, f"cpu {usage} vs {cpu_stat}")
        memory = data["memory"]["usage"]
        expect(memory["usage"] > 0, f"memory {memory}")
        expect(memory["max"] >= 4_000_000, f"memory.peak {memory}")
        expect(memory["limit"] == 128 * MiB, f"memory limit {memory}")
        expect(data["pids"] == {"current": 1, "limit": 50}, f"pids {data['pids']}")
        expect("blkio" in data, f"no blkio in {sorted(data)}")
        self.runc("delete", "--force", container_id)
        return {"cpu": usage, "memory": memory, "pids": data["pids"]}

    def check_device_rules_are_enforced_by_ebpf(self) -> dict[str, Any]:
        major, minor = block_device()
        config = self.base_config(
            ["sh", "-c",
             f"mknod /tmp/disk b {major} {minor} && mknod /tmp/kmsg c 1 11 && echo made; "
             "head -c 1 /tmp/disk > /dev/null && echo disk-read-ok; "
             "echo x > /tmp/disk || echo disk-write-denied; "
             "echo sampan-test > /tmp/kmsg || echo kmsg-denied; "
             "echo x > /dev/null && echo null-ok; exec sleep 1000"])
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append("CAP_MKNOD")
        # deny everything, then allow reading the disk; 1:11 (kmsg) stays denied
        config["linux"]["resources"]["devices"] = [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"},
        ]
        container_id, bundle, pid = self.start([], config=config)
        text = wait_until(lambda: "null-ok" in out(bundle) and out(bundle), "the device probe")
        expect("made" in text, f"mknod: {text}")  # "m" is allowed for every device, as in runc
        expect("disk-read-ok" in text, f"read of the allowed disk: {text}")
        expect("disk-write-denied" in text, f"write to the read-only rule: {text}")
        expect("kmsg-denied" in text and "Operation not permitted" in text, f"kmsg: {text}")
        from sampan.kernel import bpf

        cgroup = str(v2_cgroup(pid))
        fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
        try:
            programs = bpf.prog_query_device(fd, cgroup)
        finally:
            os.close(fd)
        expect(len(programs) == 1, f"device programs attached: {programs}")
        self.runc("delete", "--force", container_id)
        return {"output": text.splitlines()}

    def check_delete_removes_the_cgroup(self) -> dict[str, Any]:
        container_id, _, pid = self.start(
            ["sh", "-c", "sleep 1001 & exec sleep 1000"], {"pids": {"limit": 10}})
        cgroup = v2_cgroup(pid)
        refused = self.runc("delete", container_id, check=False)
        expect(refused.returncode == 1 and b"not stopped" in refused.stderr,
               f"delete of a running container: {refused.stderr!r}")
        self.runc("delete", "--force", container_id)
        expect(not alive(pid), "init alive after delete --force")
        expect(not cgroup.exists(), f"{cgroup} left behind")
        expect(not (self.h.root / container_id).exists(), "state left behind")
        # run in the foreground: exit code back, cgroup gone
        run_bundle = self.h.bundle(self.base_config(["sh", "-c", "echo hi; exit 9"]))
        result = self.runc("run", "--bundle", str(run_bundle), self.unique("c"), check=False)
        expect((result.returncode, result.stdout) == (9, b"hi\n"),
               f"run: {result.returncode} {result.stdout!r} {result.stderr!r}")
        expect(not (CGROUP_ROOT / self.h.cgroup_parent / run_bundle.name).exists(),
               "run left its cgroup")
        return {"cgroup": str(cgroup)}


def clean_up(harness: Any) -> dict[str, Any]:
    """Force-delete leftover containers; then every container cgroup must be gone.

    The harness removes its parent cgroup only under v1-style /sys/fs/cgroup/<controller>
    dirs, so on v2 the (empty) parent is removed here.
    """
    try:
        harness.cleanup()
        parent = CGROUP_ROOT / harness.cgroup_parent
        left = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.exists() else []
        if parent.exists() and not left:
            parent.rmdir()
        return {"cleanup": "ok", "container_cgroups_left": left}
    except Exception as exc:
        return {"cleanup": repr(exc)}


def report(name: str, ok: bool, detail: Any, seconds: float) -> None:
    line = json.dumps({"check": name, "ok": ok, "detail": detail,
                       "seconds": round(seconds, 2)}, default=str)
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    parser.add_argument("--rootfs-tar", help="busybox-rootfs.tar (default: the harness's)")
    parser.add_argument("--work", default="/run/sampan-vm")
    parser.add_argument("--only", action="append", help="run only these checks")
    options = parser.parse_args()

    sys.path[:0] = [options.repo, str(Path(options.repo) / "src")]
    os.makedirs(options.work, exist_ok=True)
    os.environ["TMPDIR"] = options.work  # the harness's temp dirs and rootfs cache
    if options.rootfs_tar:
        os.environ["SAMPAN_IMAGES"] = str(Path(options.rootfs_tar).parent)
    import tempfile

    tempfile.tempdir = None
    from tests import runtime_harness

    if options.rootfs_tar:
        runtime_harness.BUSYBOX_ROOTFS_TAR = Path(options.rootfs_tar)
    harness = runtime_harness.RuntimeHarness()
    checks = Checks(harness, runtime_harness.RUNTIME, runtime_harness.base_config,
                    runtime_harness.unique)
    print(json.dumps({"guest": {"kernel": os.uname().release, "python": sys.version.split()[0],
                                "uptime": read(Path("/proc/uptime")).split()[0]}}), flush=True)
    try:
        for name in options.only or CHECK_NAMES:
            started = time.monotonic()
            try:
                detail = getattr(checks, f"check_{name}")()
                report(name, True, detail, time.monotonic() - started)
            except Exception as exc:
                lines = traceback.format_exception(exc)
                report(name, False, "".join(lines[-3:]).strip(), time.monotonic() - started)
    finally:
        print(json.dumps(clean_up(harness)), flush=True)
        runtime_harness.remove_rootfs_cache()
    print("SAMPAN-VM-DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
