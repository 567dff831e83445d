"""sampan-runc where cgroup v2 is the only hierarchy (acceptance item 3 of the runtime issue).

A holder process gets a private mount namespace in which the hybrid tree at /sys/fs/cgroup is
detached and replaced by a tmpfs with cgroup2 mounted on it; every sampan-runc call of a test
runs in that namespace (``nsenter --mount``), so the runtime detects "v2" and uses one
directory of the unified hierarchy per container.

What this host allows (checked in ``test_only_hugetlb_is_offered_and_why``): the kernel has one
unified hierarchy, and a controller bound to a mounted v1 hierarchy (cpu, cpuacct, cpuset, memory,
devices, freezer, blkio, pids) cannot be enabled on it while that hierarchy exists. The host's
v1 hierarchies are in use (they hold other cgroups), so cgroup2 offers only ``hugetlb`` in
cgroup.controllers, plus the core files every v2 cgroup has (cgroup.procs, cgroup.freeze,
cgroup.kill, cgroup.events, cpu.stat). So here the tests prove for real: placement in the v2
cgroup, pause/resume through cgroup.freeze, kill --all, ps, delete, eBPF device rules, the
hugetlb limit, stats from the core files, and a clear error when memory/pids limits are asked
for. Memory/cpu/pids/io writes on v2 are covered by the unit tests on the fake cgroupfs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique

pytestmark = pytest.mark.privileged

HOST_UNIFIED = Path("/sys/fs/cgroup/unified")
MiB = 1 << 20

_SETUP = (
    "umount -l /sys/fs/cgroup && "
    "mount -t tmpfs -o mode=755 sampan-test-cgroup /sys/fs/cgroup && "
    "mount -t cgroup2 cgroup2 /sys/fs/cgroup && "
    "echo ready && exec sleep 100000"
)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


class V2Runtime:
    """sampan-runc calls made inside the holder's cgroup2-only mount namespace."""

    def __init__(self, harness: RuntimeHarness, holder: subprocess.Popen[bytes]) -> None:
        self.harness = harness
        self.holder = holder

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", RUNTIME,
                "--root", str(self.harness.root), "--log", str(self.harness.log),
                "--log-format", "json", *args]

    def run(self, *args: str, input: bytes | None = None,
            check: bool = False) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(self.argv(*args), input=input, capture_output=True, timeout=60,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def state(self, container_id: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.run("state", container_id, check=True).stdout)
        return state

    def host_cgroup(self, bundle: Path) -> Path:
        """The container's cgroup as the host sees it (the harness's cgroupsPath)."""
        return HOST_UNIFIED / self.harness.cgroup_parent / bundle.name

    def create(self, config: dict[str, Any]
               ) -> tuple[str, Path, subprocess.CompletedProcess[bytes]]:
        bundle = self.harness.bundle(config)
        container_id = unique("c")
        with open(bundle / "out", "ab") as out:
            result = subprocess.run(
                self.argv("create", "--bundle", str(bundle), "--pid-file",
                          str(bundle / "init.pid"), container_id),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=60)
        return container_id, bundle, result

    def start(self, args: list[str],
              resources: dict[str, Any] | None = None) -> tuple[str, Path, int]:
        config = base_config(args)
        config["linux"]["resources"].update(resources or {})
        container_id, bundle, result = self.create(config)
        assert result.returncode == 0, (bundle / "out").read_text()
        self.run("start", container_id, check=True)
        return container_id, bundle, int((bundle / "init.pid").read_text())

    def cleanup(self) -> None:
        for container_id in sorted(os.listdir(self.harness.root)) \
                if self.harness.root.exists() else []:
            self.run("delete", "--force", container_id)


@pytest.fixture
def v2(runtime: RuntimeHarness) -> Iterator[V2Runtime]:
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               _SETUP], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"ready\n", "cannot mount cgroup2 alone"
        v2runtime = V2Runtime(runtime, holder)
        try:
            yield v2runtime
        finally:
            v2runtime.cleanup()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""  # gone meanwhile (the init's short `sleep 0.05` children)


def out(bundle: Path) -> str:
    return (bundle / "out").read_text(errors="replace")


# --- what is possible here ---------------------------------------------------------------


def test_only_hugetlb_is_offered_and_why(v2: V2Runtime) -> None:
    inside = subprocess.run(
        ["nsenter", f"--mount=/proc/{v2.holder.pid}/ns/mnt", "--", "sh", "-c",
         "grep cgroup /proc/self/mountinfo; echo; cat /sys/fs/cgroup/cgroup.controllers"],
        capture_output=True, check=True, text=True).stdout
    mounts, _, controllers = inside.partition("\n\n")
    # cgroup2 is the only cgroup hierarchy this namespace sees
    fstypes = [line.split(" - ")[1].split()[0] for line in mounts.splitlines()]
    assert [t for t in fstypes if t.startswith("cgroup")] == ["cgroup2"]
    assert controllers.split() == ["hugetlb"]
    # every other v2-capable controller is bound to a v1 hierarchy (column 2 non-zero)
    bound = {}
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, hierarchy, _, enabled = line.split()
        bound[name] = int(hierarchy) != 0 and enabled == "1"
    assert not bound["hugetlb"]
    assert all(bound[c] for c in ("cpu", "memory", "pids", "blkio", "cpuset", "freezer",
                                  "devices"))


# --- placement, state, ps, delete -----------------------------------------------------


def test_container_lives_in_its_v2_cgroup_only(v2: V2Runtime) -> None:
    container_id, bundle, pid = v2.start(["sh", "-c", "cat /proc/self/cgroup; exec sleep 1000"])
    record = json.loads((v2.harness.root / container_id / "state.json").read_text())
    assert record["cgroup"]["version"] == "v2"
    expected = f"/{v2.harness.cgroup_parent}/{bundle.name}"
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert f"0::{expected}" in lines
    # no v1 hierarchy was used: no v1 line names the container's cgroup
    assert [line for line in lines if expected in line and not line.startswith("0::")] == []
    cgroup = v2.host_cgroup(bundle)
    assert (cgroup / "cgroup.procs").read_text().split() == [str(pid)]
    assert v2.state(container_id)["status"] == "running"
    # without a cgroup namespace the container sees the host's view of its own cgroup
    wait_until(lambda: "0::" in out(bundle), "the container's /proc/self/cgroup")
    assert f"0::{expected}" in out(bundle).splitlines()


def test_ps_lists_the_processes_of_the_v2_cgroup(v2: V2Runtime) -> None:
    container_id, bundle, pid = v2.start(
        ["sh", "-c", "sleep 1001 & sleep 1002 & echo spawned; wait"])
    wait_until(lambda: "spawned" in out(bundle), "the children")
    pids = json.loads(v2.run("ps", "--format", "json", container_id, check=True).stdout)
    assert sorted(pids) == sorted(
        int(p) for p in (v2.host_cgroup(bundle) / "cgroup.procs").read_text().split())
    assert pid in pids and len(pids) == 3


def test_delete_force_removes_the_v2_cgroup_and_the_state(v2: V2Runtime) -> None:
    container_id, bundle, pid = v2.start(["sh", "-c", "sleep 1001 & exec sleep 1000"])
    cgroup = v2.host_cgroup(bundle)
    assert cgroup.is_dir()
    refused = v2.run("delete", container_id)
    assert refused.returncode == 1 and b"not stopped" in refused.stderr
    v2.run("delete", "--force", container_id, check=True)
    assert not alive(pid)
    assert not cgroup.exists()
    assert not (v2.harness.root / container_id).exists()


def test_kill_all_with_sigkill_empties_the_cgroup(v2: V2Runtime) -> None:
    container_id, bundle, _ = v2.start(
        ["sh", "-c", "sleep 1001 & sleep 1002 & echo spawned; wait"])
    wait_until(lambda: "spawned" in out(bundle), "the children")
    pids = json.loads(v2.run("ps", "--format", "json", container_id, check=True).stdout)
    v2.run("kill", "--all", container_id, "KILL", check=True)
    wait_until(lambda: not any(alive(p) for p in pids), "every process to die")
    assert v2.state(container_id)["status"] == "stopped"
    v2.run("delete", container_id, check=True)
    assert not v2.host_cgroup(bundle).exists()


def test_kill_all_with_sigterm_reaches_every_child(v2: V2Runtime) -> None:
    container_id, bundle, pid = v2.start(
        ["sh", "-c", "trap 'echo init-got-TERM' TERM; sleep 1001 & sleep 1002 & "
         "echo spawned; while :; do sleep 0.05; done"])
    wait_until(lambda: "spawned" in out(bundle), "the children")
    sleepers = [p for p in json.loads(v2.run("ps", "--format", "json", container_id,
                                             check=True).stdout)
                if cmdline(p).startswith(b"sleep\x00100")]
    assert len(sleepers) == 2
    v2.run("kill", "--all", container_id, "TERM", check=True)
    wait_until(lambda: not any(alive(p) for p in sleepers), "the children to die of SIGTERM")
    wait_until(lambda: "init-got-TERM" in out(bundle), "the init's trap")
    assert alive(pid)
    # kill --all froze the cgroup to signal a stable set of processes, and thawed it again
    assert (v2.host_cgroup(bundle) / "cgroup.freeze").read_text().strip() == "0"


# --- pause / resume: cgroup.freeze ---------------------------------------------------------


def test_pause_and_resume_through_cgroup_freeze(v2: V2Runtime) -> None:
    counter = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; done"
    container_id, bundle, _ = v2.start(["sh", "-c", counter])
    count_file = bundle / "rootfs" / "tmp" / "count"

    def count() -> int:
        text = count_file.read_text().strip() if count_file.exists() else ""
        return int(text) if text.isdigit() else -1

    wait_until(lambda: count() > 0, "the counter to run")
    cgroup = v2.host_cgroup(bundle)
    v2.run("pause", container_id, check=True)
    assert v2.state(container_id)["status"] == "paused"
    assert (cgroup / "cgroup.freeze").read_text().strip() == "1"
    assert "frozen 1" in (cgroup / "cgroup.events").read_text().splitlines()
    frozen = count()
    time.sleep(0.3)
    assert count() == frozen

    v2.run("resume", container_id, check=True)
    assert v2.state(container_id)["status"] == "running"
    assert (cgroup / "cgroup.freeze").read_text().strip() == "0"
    wait_until(lambda: count() > frozen, "the counter to advance after resume")


def test_delete_force_of_a_paused_v2_container(v2: V2Runtime) -> None:
    container_id, bundle, pid = v2.start(["sleep", "1000"])
    v2.run("pause", container_id, check=True)
    v2.run("delete", "--force", container_id, check=True)
    assert not alive(pid)
    assert not v2.host_cgroup(bundle).exists()


# --- devices: an eBPF program on the cgroup ------------------------------------------------


def test_device_rules_are_enforced_by_ebpf(v2: V2Runtime) -> None:
    config = base_config(["sh", "-c",
                          "mknod /tmp/loop0 b 7 0 && mknod /tmp/kmsg c 1 11 && echo made; "
                          "head -c 1 /tmp/loop0 > /dev/null && echo loop0-open-ok; "
                          "echo sampan-test > /tmp/kmsg || echo kmsg-denied; "
                          "echo x > /dev/null && echo null-ok; exec sleep 1000"])
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_MKNOD")
    # deny everything, then allow reading block 7:0 (loop0); 1:11 (kmsg) stays denied
    config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"},
    ]
    container_id, bundle, result = v2.create(config)
    assert result.returncode == 0, out(bundle)
    pid = int((bundle / "init.pid").read_text())
    v2.run("start", container_id, check=True)
    text = wait_until(lambda: "null-ok" in out(bundle) and out(bundle), "the device probe")
    assert "made" in text  # mknod itself is allowed ("m" for every device, as runc does)
    assert "loop0-open-ok" in text, text
    assert "kmsg-denied" in text and "Operation not permitted" in text, text
    # not the v1 devices controller: the container is still in the runtime's devices cgroup
    devices_line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                        if ":devices:" in line)
    assert v2.harness.cgroup_parent not in devices_line
    from sampan.kernel import bpf

    cgroup = str(v2.host_cgroup(bundle))
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(bpf.prog_query_device(fd, cgroup)) == 1
    finally:
        os.close(fd)


# --- hugetlb, and controllers that are not there ------------------------------------------


def test_hugetlb_limit_is_applied(v2: V2Runtime) -> None:
    container_id, bundle, _ = v2.start(
        ["sleep", "1000"],
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB},
                            {"pageSize": "1GB", "limit": 0}]})
    cgroup = v2.host_cgroup(bundle)
    assert int((cgroup / "hugetlb.2MB.max").read_text()) == 8 * MiB
    assert (cgroup / "hugetlb.1GB.max").read_text().strip() == "0"
    data = json.loads(v2.run("events", "--stats", container_id, check=True).stdout)["data"]
    assert data["hugetlb"]["2MB"]["usage"] == 0


@pytest.mark.parametrize("resources, controller", [
    ({"memory": {"limit": 64 * MiB}}, "memory"),
    ({"pids": {"limit": 10}}, "pids"),
])
def test_limit_without_its_controller_is_a_clear_error(
        v2: V2Runtime, resources: dict[str, Any], controller: str) -> None:
    config = base_config(["true"])
    config["linux"]["resources"].update(resources)
    container_id, bundle, result = v2.create(config)
    assert result.returncode == 1
    message = out(bundle)
    assert f"cgroup controller {controller} is not available" in message, message
    assert "available: hugetlb" in message
    log = json.loads(v2.harness.log.read_text().splitlines()[-1])
    assert log["level"] == "error" and controller in log["msg"]
    # nothing is left behind: no state, no cgroup
    assert not (v2.harness.root / container_id).exists()
    assert not v2.host_cgroup(bundle).exists()


def test_update_of_a_missing_controller_is_a_clear_error(v2: V2Runtime) -> None:
    container_id, _, pid = v2.start(["sleep", "1000"])
    result = v2.run("update", "--pids-limit", "10", container_id)
    assert result.returncode == 1
    assert b"cgroup controller pids is not available" in result.stderr
    assert alive(pid) and v2.state(container_id)["status"] == "running"


# --- events --stats ----------------------------------------------------------------------


def test_events_stats_reports_cpu_from_the_core_files(v2: V2Runtime) -> None:
    container_id, bundle, _ = v2.start(
        ["sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo busy-done; "
         "exec sleep 1000"])
    wait_until(lambda: "busy-done" in out(bundle), "the busy loop")
    result = v2.run("events", "--stats", container_id, check=True)
    event = json.loads(result.stdout)
    assert event["type"] == "stats" and event["id"] == container_id
    usage = event["data"]["cpu"]["usage"]
    assert usage["total"] > 0
    assert usage["user"] + usage["kernel"] > 0
    assert "memory" not in event["data"] and "pids" not in event["data"]  # not offered here


def test_run_in_v2_returns_the_exit_code_and_cleans_up(v2: V2Runtime) -> None:
    bundle = v2.harness.bundle(base_config(["sh", "-c", "echo hi; exit 9"]))
    result = v2.run("run", "--bundle", str(bundle), unique("c"))
    assert (result.returncode, result.stdout) == (9, b"hi\n"), result.stderr
    assert not v2.host_cgroup(bundle).exists()


def test_exec_joins_the_v2_cgroup(v2: V2Runtime) -> None:
    container_id, bundle, _ = v2.start(["sleep", "1000"])
    result = v2.run("exec", container_id, "cat", "/proc/self/cgroup", check=True)
    assert f"0::/{v2.harness.cgroup_parent}/{bundle.name}" in result.stdout.decode().splitlines()
