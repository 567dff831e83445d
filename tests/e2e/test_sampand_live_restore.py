"""Acceptance item 3: live restore. ``kill -9`` of sampand while three containers run (one
writes a numbered line every 10 ms); a restarted sampand finds them all, inspect is right,
the log has no gap, attach/exec/stop work again."""

from __future__ import annotations

import os
import time

from sampand_harness import Sampand, alive, started_with_busybox

COUNTER = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.01; done"


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _numbers(log: str) -> list[int]:
    return [int(line) for line in log.split()]


def test_kill_9_then_restart_keeps_containers() -> None:
    daemon: Sampand = started_with_busybox()
    try:
        counter = daemon.run_d("--name", "counter", "busybox", "sh", "-c", COUNTER)
        sleeper = daemon.run_d("--name", "sleeper", "busybox", "sleep", "1000")
        paused = daemon.run_d("--name", "paused1", "busybox", "sleep", "1000")
        daemon.ok("pause", "paused1")
        before = {name: daemon.inspect(name) for name in ("counter", "sleeper", "paused1")}
        daemon.wait_for("some counter lines", lambda: len(daemon.ok("logs", "counter")) > 20)
        supervisor = daemon.supervisor_pid
        assert alive(supervisor)
        # double-forked into its own session: not sampand's child (nobody's zombie later)
        assert daemon.process is not None and _ppid(supervisor) != daemon.process.pid
        assert os.getsid(supervisor) != os.getsid(daemon.process.pid)

        daemon.kill9()
        time.sleep(0.5)  # the counter keeps writing while nobody serves the API
        for name, record in before.items():
            assert alive(record["State"]["Pid"]), f"{name} died with sampand"
        assert alive(supervisor)
        daemon.start()
        assert daemon.supervisor_pid == supervisor  # the same supervisor, found again

        running = daemon.ok("ps", "--format", "{{.Names}} {{.Status}}").splitlines()
        assert sorted(line.split()[0] for line in running) == ["counter", "paused1", "sleeper"]
        for name, record in before.items():
            after = daemon.inspect(name)
            assert after["Id"] == record["Id"]
            assert after["State"]["Pid"] == record["State"]["Pid"]
            assert after["State"]["StartedAt"] == record["State"]["StartedAt"]
            assert after["State"]["Status"] == ("paused" if name == "paused1" else "running")
        # attach and exec work on the restored containers
        assert daemon.ok("exec", "sleeper", "echo", "again") == "again\n"
        daemon.ok("unpause", "paused1")
        assert daemon.ok("exec", "paused1", "true") == ""

        # stop works (the exit is noticed), and the counter's log has no gap
        daemon.ok("stop", "-t", "1", "counter")
        assert daemon.inspect("counter")["State"]["Status"] == "exited"
        numbers = _numbers(daemon.ok("logs", "counter"))
        assert numbers == list(range(1, len(numbers) + 1)), "gap or repeat in the log"
        assert len(numbers) > 50
        daemon.ok("stop", "-t", "1", "sleeper", "paused1")
        assert daemon.ok("ps", "-q") == ""
        assert set(daemon.ok("ps", "-aq", "--no-trunc").split()) == {counter, sleeper, paused}
    finally:
        daemon.close()


def test_exit_while_sampand_is_down_is_noticed() -> None:
    daemon: Sampand = started_with_busybox()
    try:
        daemon.run_d("--name", "short", "busybox", "sh", "-c", "sleep 1; exit 9")
        daemon.kill9()
        time.sleep(1.5)
        daemon.start()
        daemon.wait_for("the exit recorded",
                        lambda: daemon.inspect("short")["State"]["Status"] == "exited")
        state = daemon.inspect("short")["State"]
        assert state["ExitCode"] == 9
        assert daemon.ok("wait", "short") == "9\n"
        daemon.ok("rm", "short")
    finally:
        daemon.close()
