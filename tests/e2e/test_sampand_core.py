"""A real ``sampand`` on a private socket, data root and exec root, driven by the docker CLI:
the core path (run, exit codes, half-close, the detached lifecycle, errors). The daemon and
its teardown live in ``sampand_harness.py``."""

from __future__ import annotations

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


def test_run_rm_prints_output(sampand: Sampand) -> None:
    assert sampand.ok("run", "--rm", "--network", "none", "busybox", "echo", "hi") == "hi\n"
    assert sampand.ok("ps", "-aq") == ""


def test_exit_code_propagates(sampand: Sampand) -> None:
    result = sampand.docker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr


def test_stdin_half_close_ends_cat(sampand: Sampand) -> None:
    out = sampand.ok("run", "-i", "--rm", "--network", "none", "busybox", "cat", input=b"x\n")
    assert out == "x\n"


def test_detached_container_lifecycle(sampand: Sampand) -> None:
    cid = sampand.ok("run", "-d", "--name", "core1", "--network", "none", "busybox", "sh",
                     "-c", "echo started; while true; do echo tick; sleep 0.2; done").strip()
    sampand.seen.add(cid)
    assert len(cid) == 64
    listed = sampand.ok("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").splitlines()
    assert any(line.startswith(cid[:12]) and " core1 Up " in line for line in listed), listed
    deadline = time.monotonic() + 10
    while "tick" not in sampand.ok("logs", "core1"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sampand.ok("logs", "core1").splitlines()[0] == "started"
    stamped = sampand.ok("logs", "--tail", "1", "-t", "core1").strip()
    assert stamped.endswith("Z tick") and len(stamped.splitlines()) == 1

    assert sampand.ok("exec", "core1", "echo", "from-exec") == "from-exec\n"
    assert sampand.docker("exec", "core1", "sh", "-c", "exit 7").returncode == 7
    assert sampand.ok("inspect", "-f", "{{.State.Status}} {{.State.Running}}", "core1") == \
        "running true\n"

    sampand.ok("pause", "core1")
    assert "(Paused)" in sampand.ok("ps", "--format", "{{.Status}}", "-f", "name=core1")
    assert sampand.docker("pause", "core1").returncode != 0
    sampand.ok("unpause", "core1")

    sampand.ok("stop", "-t", "1", "core1")
    status = sampand.ok("ps", "-a", "--format", "{{.Status}}", "-f", "name=core1").strip()
    assert status.startswith("Exited (137)"), status
    assert sampand.ok("inspect", "-f", "{{.State.ExitCode}}", "core1") == "137\n"
    sampand.ok("rm", "-f", "core1")
    assert sampand.docker("inspect", "core1").returncode != 0


def test_rm_force_removes_running_container(sampand: Sampand) -> None:
    cid = sampand.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    sampand.seen.add(cid)
    sampand.ok("rm", "-f", cid)
    assert sampand.ok("ps", "-aq", "--no-trunc").split().count(cid) == 0
    assert not (sampand.root / "exec" / "bundles" / cid / "rootfs").exists()


def test_errors_are_clear(sampand: Sampand) -> None:
    missing = sampand.docker("inspect", "--type", "container", "nosuch")
    assert b"No such container: nosuch" in missing.stderr
    bad_name = sampand.docker("create", "--name", "w", "busybox", "true")
    assert b"Invalid container name (w)" in bad_name.stderr
    sampand.seen.update(sampand.ok("ps", "-aq", "--no-trunc").split())
    cid = sampand.ok("create", "--name", "dup1", "--network", "none", "busybox", "true").strip()
    sampand.seen.add(cid)
    conflict = sampand.docker("create", "--name", "dup1", "busybox", "true")
    assert b"is already in use" in conflict.stderr
    stopped = sampand.docker("pause", "dup1")
    assert stopped.returncode != 0 and b"is not running" in stopped.stderr
    sampand.ok("rm", "dup1")
