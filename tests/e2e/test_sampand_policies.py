"""Acceptance item 4: restart policies, health checks, OOM and AutoRemove, with the docker
CLI against a real sampand."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from sampand_harness import Sampand, started_with_busybox


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


def _state(sampand: Sampand, name: str) -> dict[str, object]:
    state: dict[str, object] = sampand.inspect(name)["State"]
    return state


def _events(sampand: Sampand, name: str, since: str) -> list[dict[str, object]]:
    until = f"{time.time():.6f}"  # (the CLI turns "0s" into whole seconds: too early)
    out = sampand.ok("events", "--since", since, "--until", until, "--format", "{{json .}}",
                     "--filter", f"container={name}")
    return [json.loads(line) for line in out.splitlines()]


def _now(sampand: Sampand) -> str:
    return f"{time.time() - 0.5:.3f}"


def test_on_failure_retries_with_growing_delay(sampand: Sampand) -> None:
    since = _now(sampand)
    sampand.run_d("--name", "onfail", "--restart", "on-failure:3", "busybox", "sh", "-c",
                  "exit 2")
    sampand.wait_for("three restarts, then exited", lambda: (
        sampand.inspect("onfail")["RestartCount"] == 3
        and _state(sampand, "onfail")["Status"] == "exited"), timeout=30)
    assert _state(sampand, "onfail")["ExitCode"] == 2
    starts = [int(e["timeNano"]) for e in _events(sampand, "onfail", since)  # type: ignore[call-overload]
              if e["Action"] == "start"]
    assert len(starts) == 4, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Docker's delay doubles from 100 ms: 100, 200, 400 ms between the exits and restarts
    assert gaps[2] > gaps[0], gaps
    sampand.ok("rm", "onfail")


def test_always_restarts_until_stopped(sampand: Sampand) -> None:
    sampand.run_d("--name", "always1", "--restart", "always", "busybox", "sh", "-c",
                  "sleep 0.2; exit 0")
    sampand.wait_for("two restarts", lambda: sampand.inspect("always1")["RestartCount"] >= 2,
                     timeout=30)
    sampand.ok("stop", "-t", "1", "always1")
    count = sampand.inspect("always1")["RestartCount"]
    assert _state(sampand, "always1")["Status"] == "exited"
    sampand.ok("wait", "always1")
    assert sampand.inspect("always1")["RestartCount"] == count
    assert _state(sampand, "always1")["Status"] == "exited"
    sampand.ok("rm", "always1")


def test_daemon_start_restarts_always_not_unless_stopped() -> None:
    daemon = started_with_busybox()
    try:
        daemon.run_d("--name", "alw", "--restart", "always", "busybox", "sleep", "1000")
        daemon.run_d("--name", "unl", "--restart", "unless-stopped", "busybox", "sleep", "1000")
        daemon.run_d("--name", "unl2", "--restart", "unless-stopped", "busybox", "sleep",
                     "1000")
        daemon.run_d("--name", "nop", "busybox", "sleep", "1000")
        daemon.ok("stop", "-t", "0", "alw", "unl", "nop")
        # sampand goes away; meanwhile unl2's process dies (as in a reboot)
        pid = daemon.inspect("unl2")["State"]["Pid"]
        daemon.kill9()
        os.kill(pid, signal.SIGKILL)
        daemon.start()
        daemon.wait_for("alw running again", lambda: _state(daemon, "alw")["Running"] is True)
        assert _state(daemon, "unl")["Status"] == "exited"
        assert _state(daemon, "nop")["Status"] == "exited"
        assert _state(daemon, "unl2")["Running"] is True
    finally:
        daemon.close()


def test_health_checks(sampand: Sampand) -> None:
    since = _now(sampand)
    sampand.run_d("--name", "healthy1", "--health-cmd", "test -e /tmp/ok || touch /tmp/ok",
                  "--health-interval", "200ms", "--health-retries", "2", "busybox",
                  "sleep", "1000")
    sampand.run_d("--name", "sick1", "--health-cmd", "echo failing; exit 1",
                  "--health-interval", "200ms", "--health-retries", "2", "--health-timeout",
                  "2s", "busybox", "sleep", "1000")
    sampand.wait_for("healthy", lambda: _health(sampand, "healthy1")["Status"] == "healthy")
    sampand.wait_for("unhealthy", lambda: _health(sampand, "sick1")["Status"] == "unhealthy")
    sick = _health(sampand, "sick1")
    assert sick["FailingStreak"] >= 2  # type: ignore[operator]
    last = sick["Log"][-1]  # type: ignore[index]
    assert last["ExitCode"] == 1 and last["Output"] == "failing\n"
    statuses = dict(line.split(" ", 1) for line in sampand.ok(
        "ps", "--format", "{{.Names}} {{.Status}}").splitlines())
    assert statuses["healthy1"].endswith("(healthy)"), statuses
    assert statuses["sick1"].endswith("(unhealthy)"), statuses
    assert sampand.ok("ps", "-q", "--filter", "health=unhealthy").split() == [
        sampand.inspect("sick1")["Id"][:12]]
    actions = [e["Action"] for e in _events(sampand, "healthy1", since)]
    assert "health_status: healthy" in actions, actions
    actions = [e["Action"] for e in _events(sampand, "sick1", since)]
    assert "health_status: unhealthy" in actions, actions
    sampand.ok("rm", "-f", "healthy1", "sick1")


def _health(sampand: Sampand, name: str) -> dict[str, object]:
    health: dict[str, object] = _state(sampand, name)["Health"]  # type: ignore[assignment]
    return health


def test_oom_kill_is_recorded(sampand: Sampand) -> None:
    since = _now(sampand)
    result = sampand.docker("run", "--name", "hog1", "--network", "none", "--memory", "8m",
                            "--memory-swap", "8m", "busybox", "sh", "-c",
                            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done")
    sampand.seen.add(sampand.inspect("hog1")["Id"])
    assert result.returncode == 137, result.stderr
    state = _state(sampand, "hog1")
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    actions = [e["Action"] for e in _events(sampand, "hog1", since)]
    assert "oom" in actions and actions.index("oom") < actions.index("die"), actions
    sampand.ok("rm", "hog1")


def test_auto_remove(sampand: Sampand) -> None:
    cid = sampand.run_d("--rm", "--name", "auto1", "busybox", "sleep", "0.3")
    sampand.wait_for("auto1 removed", lambda: sampand.docker("inspect", cid).returncode != 0)
    assert cid not in sampand.ok("ps", "-aq", "--no-trunc")
    # --rm with a restart policy is refused, as in Docker
    refused = sampand.docker("run", "-d", "--rm", "--restart", "always", "--network", "none",
                             "busybox", "true")
    assert refused.returncode != 0
    assert b"conflicting options" in refused.stderr.lower()
    # ... by the daemon too (the CLI checks it first)
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {
        "NetworkMode": "none", "AutoRemove": True, "RestartPolicy": {"Name": "always"}}}
    status, reply = sampand.request("POST", "/containers/create", json.dumps(body),
                                    {"Content-Type": "application/json"})
    assert status == 400, reply
