"""linux.resources on this real hybrid host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified).

Each test starts containers with sampan-runc as a shim would, then checks what the kernel
enforces (a memory hog is OOM-killed, a fork loop hits the pids limit, a paused counter stops)
and what the host's cgroup files say, found through ``/proc/<pid>/cgroup`` of the container's
init. ``events`` must report the OOM kill and ``events --stats`` real numbers.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique

pytestmark = pytest.mark.privileged

MiB = 1 << 20


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def runtime_argv(runtime: RuntimeHarness, *args: str) -> list[str]:
    return [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log), "--log-format",
            "json", *args]


def start_container(runtime: RuntimeHarness, args: list[str],
                    resources: dict[str, Any]) -> tuple[str, Path, int]:
    """create + start; the container's stdout+stderr go to <bundle>/out."""
    config = base_config(args)
    config["linux"]["resources"].update(resources)
    bundle = runtime.bundle(config)
    container_id = unique("c")
    with open(bundle / "out", "ab") as out:
        created = subprocess.run(
            runtime_argv(runtime, "create", "--bundle", str(bundle), "--pid-file",
                         str(bundle / "init.pid"), container_id),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=60)
    assert created.returncode == 0, (bundle / "out").read_text()
    runtime.runtime("start", container_id, check=True)
    return container_id, bundle, int((bundle / "init.pid").read_text())


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of ``pid``'s cgroup in the hierarchy owning ``controller``."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
        if controller == "unified" and controllers == "":
            return Path("/sys/fs/cgroup/unified") / path.lstrip("/")
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def read(path: Path) -> str:
    return path.read_text().strip()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def stats(runtime: RuntimeHarness, container_id: str) -> dict[str, Any]:
    result = runtime.runtime("events", "--stats", container_id, check=True)
    event: dict[str, Any] = json.loads(result.stdout)
    assert event["type"] == "stats" and event["id"] == container_id
    data: dict[str, Any] = event["data"]
    return data


# --- memory ----------------------------------------------------------------------------


def read_events_until(events: subprocess.Popen[bytes], wanted: Callable[[dict[str, Any]], bool],
                      timeout: float = 30.0) -> list[dict[str, Any]]:
    """JSON lines from a running `events` until one is ``wanted`` (all lines so far)."""
    assert events.stdout is not None
    fd = events.stdout.fileno()
    buffer = b""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no wanted event in {seen}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"events ended without the wanted event: {seen}")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            seen.append(json.loads(line))
            if wanted(seen[-1]):
                return seen


def test_memory_limit_oom_kills_a_hog_and_events_reports_it(runtime: RuntimeHarness) -> None:
    # The hog (a child of the init) waits for /tmp/go so that `events` is watching before
    # memory is allocated; the container survives it, so the OOM is reported while running.
    hog = ("while [ ! -e /tmp/go ]; do sleep 0.02; done; (x=a; while :; do x=$x$x; done); "
           "echo hog-exit=$?; exec sleep 1000")
    limit = 32 * MiB
    container_id, bundle, pid = start_container(
        runtime, ["sh", "-c", hog], {"memory": {"limit": limit, "swap": limit}})
    memory = cgroup_dir(pid, "memory")
    assert runtime.cgroup_parent in str(memory)
    assert int(read(memory / "memory.limit_in_bytes")) == limit

    with subprocess.Popen(runtime_argv(runtime, "events", "--interval", "10s", container_id),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as events:
        try:
            # the first stats line says events is watching (its OOM baseline is read)
            read_events_until(events, lambda e: e["type"] == "stats")
            (bundle / "rootfs" / "tmp" / "go").touch()
            seen = read_events_until(events, lambda e: e["type"] == "oom")
            assert seen[-1] == {"type": "oom", "id": container_id}
            text = wait_until(lambda: "hog-exit=" in (bundle / "out").read_text()
                              and (bundle / "out").read_text(), "the hog to be killed")
            assert "hog-exit=137" in text  # 128 + SIGKILL from the OOM killer
            assert runtime.state(container_id)["status"] == "running"
            # events ends by itself when the container stops
            runtime.runtime("kill", container_id, "KILL", check=True)
            _, errors = events.communicate(timeout=30)
        finally:
            if events.poll() is None:
                events.kill()
    assert events.returncode == 0, errors
    assert not alive(pid)
    oom_control = dict(line.split() for line in read(memory / "memory.oom_control").splitlines())
    assert int(oom_control["oom_kill"]) >= 1


def test_oom_kill_of_the_init_is_reported_before_events_ends(runtime: RuntimeHarness) -> None:
    hog = "while [ ! -e /tmp/go ]; do sleep 0.02; done; x=a; while :; do x=$x$x; done"
    container_id, bundle, pid = start_container(
        runtime, ["sh", "-c", hog], {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    with subprocess.Popen(runtime_argv(runtime, "events", "--interval", "10s", container_id),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as events:
        try:
            read_events_until(events, lambda e: e["type"] == "stats")
            (bundle / "rootfs" / "tmp" / "go").touch()
            # the OOM killer kills the init: the container stops and events ends by itself
            remaining, errors = events.communicate(timeout=60)
        finally:
            if events.poll() is None:
                events.kill()
    assert events.returncode == 0, errors
    lines = [json.loads(line) for line in remaining.splitlines()]
    assert {"type": "oom", "id": container_id} in lines, lines
    assert not alive(pid)
    assert runtime.state(container_id)["status"] == "stopped"


def test_memory_counts_shm_and_the_limit_holds(runtime: RuntimeHarness) -> None:
    # tmpfs pages are charged to the writer's memory cgroup: filling /dev/shm past the limit
    # gets the writer OOM-killed, while a write under the limit succeeds.
    script = ("dd if=/dev/zero of=/dev/shm/small bs=1M count=8 2>/dev/null && echo small-ok; "
              "rm /dev/shm/small; dd if=/dev/zero of=/dev/shm/big bs=1M count=60 2>/dev/null; "
              "echo dd-exit=$?; exec sleep 1000")
    container_id, bundle, pid = start_container(
        runtime, ["sh", "-c", script], {"memory": {"limit": 24 * MiB, "swap": 24 * MiB}})
    text = wait_until(lambda: "dd-exit=" in (bundle / "out").read_text() and
                      (bundle / "out").read_text(), "dd to end")
    assert "small-ok" in text
    assert "dd-exit=137" in text, text  # 128 + SIGKILL from the OOM killer
    memory = cgroup_dir(pid, "memory")
    assert int(read(memory / "memory.max_usage_in_bytes")) <= 24 * MiB
    assert stats(runtime, container_id)["memory"]["usage"]["limit"] == 24 * MiB


# --- pids ------------------------------------------------------------------------------


def test_pids_limit_caps_a_fork_loop(runtime: RuntimeHarness) -> None:
    limit = 8
    # A worker subshell forks `sleep` children until fork(2) fails with EAGAIN (busybox sh
    # then gives up: "can't fork"); the init (pid 1) waits for it and reports.
    script = ("(i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); echo started-$i; done);"
              " echo worker-exit=$?; exec sleep 1000")
    container_id, bundle, pid = start_container(runtime, ["sh", "-c", script],
                                                {"pids": {"limit": limit}})
    pids_dir = cgroup_dir(pid, "pids")
    assert read(pids_dir / "pids.max") == str(limit)
    text = wait_until(lambda: "worker-exit=" in (bundle / "out").read_text()
                      and (bundle / "out").read_text(), "the fork loop to end")
    assert "can't fork" in text, text
    started = [line for line in text.splitlines() if line.startswith("started-")]
    # init + worker + sleeps = limit: the worker could start limit-2 children, no more
    assert len(started) == limit - 2, text
    processes = wait_until(lambda: (lambda p: len(p) == limit - 1 and p)(json.loads(
        runtime.runtime("ps", "--format", "json", container_id, check=True).stdout)),
        "the worker to be gone")
    commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in processes]
    assert commands == [b"sleep\x001000\x00"] * (limit - 1)
    assert int(read(pids_dir / "pids.current")) == limit - 1
    events = dict(line.split() for line in read(pids_dir / "pids.events").splitlines())
    assert int(events["max"]) > 0  # forks were refused
    assert stats(runtime, container_id)["pids"] == {"current": limit - 1, "limit": limit}


# --- cpu, blkio: values visible in the host's cgroup files --------------------------------


def test_cpu_and_blkio_settings_land_in_the_host_cgroup_files(runtime: RuntimeHarness) -> None:
    resources = {
        "cpu": {"shares": 512, "quota": 30000, "period": 60000, "cpus": "0", "mems": "0"},
        "blockIO": {"weight": 300},
        "memory": {"limit": 96 * MiB, "reservation": 48 * MiB},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
    }
    container_id, _, pid = start_container(runtime, ["sleep", "1000"], resources)
    cpu = cgroup_dir(pid, "cpu")
    assert runtime.cgroup_parent in str(cpu)
    assert read(cpu / "cpu.shares") == "512"
    assert read(cpu / "cpu.cfs_quota_us") == "30000"
    assert read(cpu / "cpu.cfs_period_us") == "60000"
    cpuset = cgroup_dir(pid, "cpuset")
    assert read(cpuset / "cpuset.cpus") == "0"
    assert read(cpuset / "cpuset.mems") == "0"
    blkio = cgroup_dir(pid, "blkio")
    weight_files = [blkio / name for name in ("blkio.weight", "blkio.bfq.weight")
                    if (blkio / name).exists()]
    assert weight_files, f"no blkio weight file in {blkio}"
    # blkio.bfq.weight reads "default 300"; blkio.weight reads "300"
    assert read(weight_files[0]).split()[-1] == "300"
    memory = cgroup_dir(pid, "memory")
    assert int(read(memory / "memory.limit_in_bytes")) == 96 * MiB
    assert int(read(memory / "memory.soft_limit_in_bytes")) == 48 * MiB
    # the unified hierarchy holds the process too (as runc does on hybrid hosts); no v1
    # hierarchy has hugetlb here, so its limit is served from cgroup2
    unified = cgroup_dir(pid, "unified")
    assert (unified / "cgroup.procs").read_text().split() == [str(pid)]
    assert int(read(unified / "hugetlb.2MB.max")) == 4 * MiB
    assert runtime.state(container_id)["status"] == "running"


# --- update ----------------------------------------------------------------------------


def test_update_flags_change_the_limits_of_a_running_container(
        runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(
        runtime, ["sleep", "1000"],
        {"memory": {"limit": 64 * MiB}, "cpu": {"quota": 20000, "period": 100000},
         "pids": {"limit": 20}})
    memory, cpu, pids = (cgroup_dir(pid, c) for c in ("memory", "cpu", "pids"))

    runtime.runtime("update", "--memory", "80m", "--cpu-quota", "40000", "--pids-limit", "30",
                    container_id, check=True)
    assert int(read(memory / "memory.limit_in_bytes")) == 80 * MiB
    assert read(cpu / "cpu.cfs_quota_us") == "40000"
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(pids / "pids.max") == "30"

    runtime.runtime("update", "--cpu-shares", "256", "--cpu-period", "50000", container_id,
                    check=True)
    assert read(cpu / "cpu.shares") == "256"
    assert read(cpu / "cpu.cfs_period_us") == "50000"
    assert int(read(memory / "memory.limit_in_bytes")) == 80 * MiB  # untouched


def test_update_resources_from_stdin_as_containerd_sends_them(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(
        runtime, ["sleep", "1000"],
        {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}, "pids": {"limit": 20},
         "cpu": {"shares": 1024}})
    memory, cpu, pids = (cgroup_dir(pid, c) for c in ("memory", "cpu", "pids"))

    # `docker update --cpus 0.5 --pids-limit 50`: zero fields mean "unchanged"
    cpus = (b'{"memory":{"limit":0,"reservation":0,"kernel":0},"cpu":{"shares":0,'
            b'"quota":50000,"period":100000},"pids":{"limit":50},"blockIO":{"weight":0}}')
    runtime.runtime("update", "--resources", "-", container_id, input=cpus, check=True)
    assert int(read(memory / "memory.limit_in_bytes")) == 64 * MiB
    assert read(cpu / "cpu.cfs_quota_us") == "50000"
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(cpu / "cpu.shares") == "1024"
    assert read(pids / "pids.max") == "50"

    # `docker update --memory 96m --memory-swap 192m`
    mem = (b'{"memory":{"limit":100663296,"reservation":0,"swap":201326592,"kernel":0},'
           b'"cpu":{"shares":0,"quota":0,"period":0},"blockIO":{"weight":0}}')
    runtime.runtime("update", "-r", "-", container_id, input=mem, check=True)
    assert int(read(memory / "memory.limit_in_bytes")) == 96 * MiB
    assert int(read(memory / "memory.memsw.limit_in_bytes")) == 192 * MiB
    assert read(cpu / "cpu.cfs_quota_us") == "50000"
    assert read(pids / "pids.max") == "50"


def test_update_of_a_stopped_container_is_refused(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["true"], {})
    wait_until(lambda: not alive(pid), "the container to stop")
    result = runtime.runtime("update", "--memory", "64m", container_id)
    assert result.returncode == 1
    assert b"not running" in result.stderr


# --- pause / resume --------------------------------------------------------------------


def test_pause_freezes_every_process_and_resume_thaws_them(runtime: RuntimeHarness) -> None:
    # a counter in the init and one in a child; quota keeps the busy loops polite
    counter = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count-$1; done"
    script = f"sh -c '{counter}' _ child & set -- init; {counter}"
    container_id, bundle, pid = start_container(runtime, ["sh", "-c", script],
                                                {"cpu": {"quota": 20000, "period": 100000}})
    tmp = bundle / "rootfs" / "tmp"

    last: dict[str, int] = {}

    def count(name: str) -> int:
        # `echo $i > file` truncates before it writes, and the cpu quota throttles the loop
        # for 80 ms at a time, often right in between: an empty read means "unchanged"
        path = tmp / f"count-{name}"
        text = path.read_text().strip() if path.exists() else ""
        if text.isdigit():
            last[name] = int(text)
        return last.get(name, -1)

    wait_until(lambda: count("init") > 0 and count("child") > 0, "both counters to run")
    runtime.runtime("pause", container_id, check=True)
    assert runtime.state(container_id)["status"] == "paused"
    assert read(cgroup_dir(pid, "freezer") / "freezer.state") == "FROZEN"
    frozen = (count("init"), count("child"))
    time.sleep(0.3)
    assert (count("init"), count("child")) == frozen
    assert runtime.runtime("pause", container_id).returncode == 1  # already paused

    runtime.runtime("resume", container_id, check=True)
    assert runtime.state(container_id)["status"] == "running"
    assert read(cgroup_dir(pid, "freezer") / "freezer.state") == "THAWED"
    wait_until(lambda: count("init") > frozen[0] and count("child") > frozen[1],
               "both counters to advance after resume")
    result = runtime.runtime("resume", container_id)
    assert result.returncode == 1 and b"not paused" in result.stderr


def test_delete_force_of_a_paused_container(runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sleep", "1000"], {})
    freezer = cgroup_dir(pid, "freezer")
    runtime.runtime("pause", container_id, check=True)
    runtime.runtime("delete", "--force", container_id, check=True)
    assert not alive(pid)
    assert not freezer.exists()


# --- events --stats --------------------------------------------------------------------


def test_events_stats_has_cpu_memory_and_pids_numbers(runtime: RuntimeHarness) -> None:
    # burn a little cpu and hold some memory, then idle
    script = ("x=$(head -c 4000000 /dev/zero | tr '\\0' a); i=0; "
              "while [ $i -lt 20000 ]; do i=$((i+1)); done; echo busy-done; exec sleep 1000")
    container_id, bundle, _ = start_container(
        runtime, ["sh", "-c", script], {"memory": {"limit": 128 * MiB}, "pids": {"limit": 50}})
    wait_until(lambda: "busy-done" in (bundle / "out").read_text(), "the busy loop")
    data = stats(runtime, container_id)
    assert data["cpu"]["usage"]["total"] > 0
    assert sum(data["cpu"]["usage"]["percpu"]) == data["cpu"]["usage"]["total"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["memory"]["usage"]["max"] >= 4_000_000
    assert data["memory"]["usage"]["limit"] == 128 * MiB
    assert data["pids"] == {"current": 1, "limit": 50}
    assert "blkio" in data


def test_events_streams_stats_at_the_interval_until_the_container_stops(
        runtime: RuntimeHarness) -> None:
    container_id, _, pid = start_container(runtime, ["sleep", "1000"], {})
    with subprocess.Popen(runtime_argv(runtime, "events", "--interval", "50ms", container_id),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as events:
        try:
            assert events.stdout is not None
            seen = [json.loads(events.stdout.readline()) for _ in range(3)]
            runtime.runtime("kill", container_id, "KILL", check=True)
            events.communicate(timeout=30)
        finally:
            if events.poll() is None:
                events.kill()
    assert events.returncode == 0
    assert [e["type"] for e in seen] == ["stats"] * 3
    assert all(e["data"]["pids"]["current"] >= 1 for e in seen)
    assert not alive(pid)
