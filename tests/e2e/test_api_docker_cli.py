"""The real docker CLI against the API server, over a fake daemon (no containers run).

These pin the HTTP side of issue 4: the call sequences of ``docker run`` (create, attach
101, wait with early headers, start), stdcopy framing, half-close, exec exit codes, errors.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api_fake import RunningServer

DOCKER = "/usr/local/bin/docker"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with RunningServer(str(tmp_path / "api.sock")) as running:
        yield running


def docker(
    server: RunningServer, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, "-H", server.url, *args],
        input=input, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "DOCKER_CONFIG": "/tmp/.sampan-api-test"},
    )


def test_version_negotiates_down_to_the_server(server: RunningServer) -> None:
    result = docker(server, "version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "1.44"
    assert result.stdout.split()[1] == "1.44"


def test_info_reports_swarm_inactive_and_the_driver(server: RunningServer) -> None:
    result = docker(server, "info", "--format", "{{.Driver}} {{.Swarm.LocalNodeState}}")
    assert (result.returncode, result.stdout) == (0, "overlay2 inactive\n")


def test_run_rm_prints_the_output_and_exits_zero(server: RunningServer) -> None:
    result = docker(server, "run", "--rm", "--network", "none", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")
    assert server.daemon.containers == {}


def test_run_propagates_exit_code_and_separates_stderr(server: RunningServer) -> None:
    result = docker(server, "run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_interactive_half_close_ends_cat(server: RunningServer) -> None:
    result = docker(server, "run", "-i", "--rm", "busybox", "cat", input="x\ny\n")
    assert (result.returncode, result.stdout) == (0, "x\ny\n")


def test_run_detached_then_ps_inspect_logs_exec_stop_rm(server: RunningServer) -> None:
    result = docker(server, "run", "-d", "--name", "web1", "busybox", "sleep", "1000")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert len(cid) == 64
    ps = docker(server, "ps", "--format", "{{.Names}} {{.Status}}")
    assert ps.stdout.strip().startswith("web1 Up")
    state = json.loads(docker(server, "inspect", "web1").stdout)[0]["State"]
    assert state["Running"] is True
    exec_result = docker(server, "exec", "web1", "sh", "-c", "echo from-exec; exit 5")
    assert (exec_result.returncode, exec_result.stdout) == (5, "from-exec\n")
    assert docker(server, "top", "web1").returncode == 0
    assert docker(server, "stop", "web1").returncode == 0
    assert json.loads(docker(server, "inspect", "web1").stdout)[0]["State"]["Running"] is False
    assert docker(server, "rm", "web1").returncode == 0
    assert docker(server, "ps", "-aq").stdout == ""


def test_logs_split_streams_by_stdcopy_frames(server: RunningServer) -> None:
    name = "logger1"
    result = docker(server, "run", "--name", name, "busybox", "sh", "-c",
                    "echo one; echo two >&2; echo three")
    assert result.returncode == 0
    logs = docker(server, "logs", name)
    assert (logs.stdout, logs.stderr) == ("one\nthree\n", "two\n")
    tail = docker(server, "logs", "--tail", "1", name)
    assert tail.stdout == "three\n"
    stamped = docker(server, "logs", "-t", name).stdout.splitlines()
    assert stamped[0].endswith(" one") and stamped[0][:4].isdigit()


def test_errors_reach_the_cli_with_docker_wording(server: RunningServer) -> None:
    missing = docker(server, "inspect", "--type", "container", "nope")
    assert missing.returncode == 1
    assert "No such container: nope" in missing.stderr
    docker(server, "run", "-d", "--name", "busy1", "busybox", "sleep", "1000")
    conflict = docker(server, "run", "-d", "--name", "busy1", "busybox", "true")
    assert conflict.returncode == 125 and "already in use" in conflict.stderr
    running = docker(server, "rm", "busy1")
    assert running.returncode == 1 and "cannot remove a running container" in running.stderr
    assert docker(server, "rm", "-f", "busy1").returncode == 0
    invalid = docker(server, "run", "--name", "w", "busybox", "true")
    assert invalid.returncode == 125 and "Invalid container name" in invalid.stderr


def test_images_tag_history_rmi_save_load(server: RunningServer, tmp_path: Path) -> None:
    assert docker(server, "tag", "busybox", "registry.local:5000/team/bb:v1").returncode == 0
    images = docker(server, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "registry.local:5000/team/bb:v1" in images
    assert docker(server, "history", "registry.local:5000/team/bb:v1").returncode == 0
    rmi = docker(server, "rmi", "registry.local:5000/team/bb:v1")
    assert "Untagged: registry.local:5000/team/bb:v1" in rmi.stdout
    archive = tmp_path / "out.tar"
    assert docker(server, "save", "-o", str(archive), "busybox").returncode == 0
    assert archive.read_bytes().startswith(b"image busybox")
    loaded = docker(server, "load", "-i", str(archive))
    assert (loaded.returncode, loaded.stdout) == (0, "Loaded image: loaded:latest\n")


def test_events_with_since_and_until_replays_past_events(server: RunningServer) -> None:
    start = int(time.time()) - 1
    docker(server, "run", "--rm", "busybox", "true")
    until = int(time.time()) + 1
    events = docker(server, "events", "--since", str(start), "--until", str(until),
                    "--format", "{{.Type}} {{.Action}}")
    assert events.returncode == 0, events.stderr
    actions = events.stdout.split("\n")
    assert "container create" in actions and "container destroy" in actions


def test_stats_no_stream(server: RunningServer) -> None:
    docker(server, "run", "-d", "--name", "st1", "busybox", "sleep", "1000")
    stats = docker(server, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "st1")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.startswith("st1 1MiB")


def test_pause_stopped_container_is_a_conflict(server: RunningServer) -> None:
    docker(server, "create", "--name", "idle1", "busybox", "true")
    result = docker(server, "pause", "idle1")
    assert result.returncode == 1 and "is not running" in result.stderr


def test_run_it_through_a_pty_resizes_and_detaches_with_ctrl_p_ctrl_q(
    server: RunningServer,
) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # child: a 30x100 terminal, then the CLI
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execv(DOCKER, [DOCKER, "-H", server.url, "run", "-it", "--name", "tty1", "busybox",
                          "cat"])
    output = b""

    def read_until(needle: bytes) -> None:
        nonlocal output
        deadline = time.monotonic() + 30
        while needle not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    return

    try:
        container = None
        deadline = time.monotonic() + 30
        while container is None and time.monotonic() < deadline:
            running = [c for c in server.daemon.containers.values() if c.state == "running"]
            container = running[0] if running else None
            time.sleep(0.05)
        assert container is not None and container.process is not None
        os.write(fd, b"hello\r")
        read_until(b"hello")
        assert b"hello" in output
        os.write(fd, b"\x10\x11")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
        assert container.state == "running"
        assert (30, 100) in container.process.resized
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
