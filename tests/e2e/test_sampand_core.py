"""A real ``sampand`` on a private socket, data root and exec root, driven by the docker CLI.

Everything lives under one short temp dir (unix socket paths must stay under 108 bytes).
Teardown, pass or fail: remove every container, stop sampand and the supervisor by the PIDs
they recorded, unmount what is left under the dir, remove the containers' cgroups, remove the
dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path(os.environ.get("SAMPAN_SHARED_IMAGES", "/work/shared/images")) / "busybox.tar"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Daemon:
    root: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def docker(self, *args: str, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], env=self.env, input=input,
                              capture_output=True, timeout=timeout, check=False)

    def ok(self, *args: str, input: bytes | None = None) -> str:
        result = self.docker(*args, input=input)
        assert result.returncode == 0, (
            f"docker {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace')}\n{self.log_tail()}")
        return result.stdout.decode()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "sampand.log").read_text()[-3000:]
        return ""


def _pid_from(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return 0


def _stop_pid(pid: int, timeout: float = 10) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


def _mounts_under(root: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            target = line.split(" ")[4]
            if target.startswith(str(root) + "/"):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def _remove_cgroups(container_ids: set[str]) -> None:
    for controller in CGROUP_ROOT.iterdir():
        for container_id in container_ids:
            directory = controller / "sampan" / container_id
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()


@pytest.fixture(scope="module")
def sampand() -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.fail("the sampand e2e tests need root")
    root = Path(tempfile.mkdtemp(prefix="sd.", dir="/tmp"))
    socket_path = root / "s.sock"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
           "DOCKER_HOST": f"unix://{socket_path}", "DOCKER_CONFIG": str(root / "cli")}
    log = open(root / "sampand.log", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "sampan.cmd.sampand", "-H", f"unix://{socket_path}",
         "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "sampand.pid"), "--log-level", "debug"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    daemon = Daemon(root, process, env)
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 30
        while daemon.docker("version").returncode != 0:
            assert process.poll() is None, f"sampand exited: {daemon.log_tail()}"
            assert time.monotonic() < deadline, f"sampand did not answer: {daemon.log_tail()}"
            time.sleep(0.2)
        daemon.ok("load", "-i", str(BUSYBOX))
        daemon.seen = seen  # type: ignore[attr-defined]
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.decode().split()
            seen.update(ids)
            if ids:
                daemon.docker("rm", "-f", *ids)
        _stop_pid(process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        _stop_pid(_pid_from(root / "exec" / "supervisor.pid"))
        for target in _mounts_under(root):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        _remove_cgroups(seen)
        log.close()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_run_rm_prints_output(sampand: Daemon) -> None:
    assert sampand.ok("run", "--rm", "--network", "none", "busybox", "echo", "hi") == "hi\n"
    assert sampand.ok("ps", "-aq") == ""


def test_exit_code_propagates(sampand: Daemon) -> None:
    result = sampand.docker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr


def test_stdin_half_close_ends_cat(sampand: Daemon) -> None:
    out = sampand.ok("run", "-i", "--rm", "--network", "none", "busybox", "cat", input=b"x\n")
    assert out == "x\n"


def test_detached_container_lifecycle(sampand: Daemon) -> None:
    cid = sampand.ok("run", "-d", "--name", "core1", "--network", "none", "busybox", "sh",
                     "-c", "echo started; while true; do echo tick; sleep 0.2; done").strip()
    sampand.seen.add(cid)  # type: ignore[attr-defined]
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


def test_rm_force_removes_running_container(sampand: Daemon) -> None:
    cid = sampand.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    sampand.seen.add(cid)  # type: ignore[attr-defined]
    sampand.ok("rm", "-f", cid)
    assert sampand.ok("ps", "-aq", "--no-trunc").split().count(cid) == 0
    assert not (sampand.root / "exec" / "bundles" / cid / "rootfs").exists()


def test_errors_are_clear(sampand: Daemon) -> None:
    missing = sampand.docker("inspect", "--type", "container", "nosuch")
    assert b"No such container: nosuch" in missing.stderr
    bad_name = sampand.docker("create", "--name", "w", "busybox", "true")
    assert b"Invalid container name (w)" in bad_name.stderr
    sampand.seen.update(sampand.ok("ps", "-aq", "--no-trunc").split())  # type: ignore[attr-defined]
    cid = sampand.ok("create", "--name", "dup1", "--network", "none", "busybox", "true").strip()
    sampand.seen.add(cid)  # type: ignore[attr-defined]
    conflict = sampand.docker("create", "--name", "dup1", "busybox", "true")
    assert b"is already in use" in conflict.stderr
    stopped = sampand.docker("pause", "dup1")
    assert stopped.returncode != 0 and b"is not running" in stopped.stderr
    sampand.ok("rm", "dup1")
