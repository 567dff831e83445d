"""Terminal mode: the pty master comes back over --console-socket (SCM_RIGHTS, as containerd
receives it) and the container gets a working tty on /dev/pts/0 of its own devpts."""

from __future__ import annotations

import array
import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime_harness import RUNTIME, RuntimeHarness, base_config, unique


class ConsoleSocket:
    """The caller's end of --console-socket: listen, accept, receive one fd."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / f"{unique('console')}.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.listener.settimeout(20)

    def receive_master(self) -> int:
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(20)
            fds = array.array("i")
            data, ancillary, _flags, _addr = connection.recvmsg(
                4096, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
        assert len(fds) == 1, (data, ancillary)
        return fds[0]

    def close(self) -> None:
        self.listener.close()
        os.unlink(self.path)


@pytest.fixture
def console(runtime: RuntimeHarness) -> Iterator[ConsoleSocket]:
    listener = ConsoleSocket(runtime.dir)
    try:
        yield listener
    finally:
        listener.close()


def read_until(master: int, wanted: bytes, timeout: float = 10) -> bytes:
    """Read the pty master until ``wanted`` shows up (or the slave side is gone)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([master], [], [], remaining)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: no slave fd open any more
            break
        if not chunk:
            break
        seen += chunk
    return seen


def sampan_runc(runtime: RuntimeHarness, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Output to files: the container keeps what it inherited open."""
    name = runtime.dir / unique("out")
    with open(f"{name}.out", "wb+") as stdout, open(f"{name}.err", "wb+") as stderr:
        completed = subprocess.run(
            [RUNTIME, "--root", str(runtime.root), "--log", str(runtime.log),
             "--log-format", "json", *args],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, timeout=30)
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(completed.args, completed.returncode,
                                           stdout.read(), stderr.read())


def terminal_config(args: list[str], **process: Any) -> dict[str, Any]:
    config = base_config(args, terminal=True)
    config["process"].update(process)
    return config


def wait_stopped(runtime: RuntimeHarness, container_id: str) -> None:
    deadline = time.monotonic() + 10
    while runtime.state(container_id)["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.02)


def test_console_socket_gives_a_working_tty(runtime: RuntimeHarness,
                                            console: ConsoleSocket) -> None:
    bundle = runtime.bundle(terminal_config(["sh"]))
    container_id = unique("c")
    created = sampan_runc(runtime, "create", "--bundle", str(bundle), "--console-socket",
                          console.path, container_id)
    assert created.returncode == 0, created.stderr
    master = console.receive_master()
    try:
        assert sampan_runc(runtime, "start", container_id).returncode == 0
        os.write(master, b"tty; echo $((6*7))\n")
        output = read_until(master, b"42\r\n")
        assert b"/dev/pts/0" in output
        assert b"42\r\n" in output  # the line discipline turns \n into \r\n: a real tty
        os.write(master, b"[ -t 0 ] && [ -t 1 ] && echo both-ttys; "
                         b"readlink /proc/self/fd/2; exit 3\n")
        output = read_until(master, b"/dev/pts/0\r\n")
        assert b"both-ttys" in output
        wait_stopped(runtime, container_id)
    finally:
        os.close(master)
    runtime.runtime("delete", container_id, check=True)


def test_the_tty_is_the_controlling_terminal_and_job_control_works(
        runtime: RuntimeHarness, console: ConsoleSocket) -> None:
    """^C on the master interrupts the foreground command: a controlling tty, signals."""
    bundle = runtime.bundle(terminal_config(["sh"]))
    container_id = unique("c")
    assert sampan_runc(runtime, "create", "--bundle", str(bundle), "--console-socket",
                       console.path, container_id).returncode == 0
    master = console.receive_master()
    try:
        assert sampan_runc(runtime, "start", container_id).returncode == 0
        os.write(master, b"sleep 30\n")
        time.sleep(0.3)
        os.write(master, b"\x03")  # VINTR: the tty sends SIGINT to its foreground group
        os.write(master, b"echo status=$?\n")
        output = read_until(master, b"status=130")
        assert b"status=130" in output
        os.write(master, b"exit\n")
        wait_stopped(runtime, container_id)
    finally:
        os.close(master)
    runtime.runtime("delete", container_id, check=True)


def test_console_size_is_honoured(runtime: RuntimeHarness, console: ConsoleSocket) -> None:
    config = terminal_config(["sh", "-c", "stty size; sleep 0.2"],
                             consoleSize={"height": 31, "width": 101})
    bundle = runtime.bundle(config)
    container_id = unique("c")
    assert sampan_runc(runtime, "create", "--bundle", str(bundle), "--console-socket",
                       console.path, container_id).returncode == 0
    master = console.receive_master()
    try:
        assert sampan_runc(runtime, "start", container_id).returncode == 0
        output = read_until(master, b"31 101")
        assert b"31 101" in output
        wait_stopped(runtime, container_id)
    finally:
        os.close(master)
    runtime.runtime("delete", container_id, check=True)


def test_exec_tty_with_console_socket(runtime: RuntimeHarness, console: ConsoleSocket) -> None:
    bundle = runtime.bundle(base_config(["sleep", "60"]))
    container_id = unique("c")
    assert sampan_runc(runtime, "run", "--detach", "--bundle", str(bundle),
                       container_id).returncode == 0
    pid_file = runtime.dir / "exec.pid"
    execd = sampan_runc(runtime, "exec", "--tty", "--detach", "--console-socket",
                        console.path, "--pid-file", str(pid_file), container_id, "sh")
    assert execd.returncode == 0, execd.stderr
    master = console.receive_master()
    try:
        os.write(master, b"tty; echo $((6*7)); echo pid=$$\n")
        output = read_until(master, b"42\r\n")
        assert b"/dev/pts/0" in output
        assert b"42\r\n" in output
        pid = int(pid_file.read_text())
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(
            f"/proc/{runtime.state(container_id)['pid']}/ns/mnt")
        os.write(master, b"exit\n")
    finally:
        os.close(master)
    runtime.runtime("delete", "--force", container_id, check=True)


def test_exec_process_file_with_terminal_and_console_size(
        runtime: RuntimeHarness, console: ConsoleSocket) -> None:
    """What containerd's shim sends for `docker exec -it`: --process FILE --detach."""
    bundle = runtime.bundle(base_config(["sleep", "60"]))
    container_id = unique("c")
    assert sampan_runc(runtime, "run", "--detach", "--bundle", str(bundle),
                       container_id).returncode == 0
    process = dict(base_config(["sh", "-c", "stty size; tty"], terminal=True)["process"])
    process["consoleSize"] = {"height": 12, "width": 34}
    process_file = runtime.dir / "process.json"
    process_file.write_text(json.dumps(process))
    execd = sampan_runc(runtime, "exec", "--process", str(process_file), "--detach",
                        "--console-socket", console.path, container_id)
    assert execd.returncode == 0, execd.stderr
    master = console.receive_master()
    try:
        output = read_until(master, b"/dev/pts/")
        assert b"12 34" in output
        assert b"/dev/pts/0" in output
    finally:
        os.close(master)
    runtime.runtime("delete", "--force", container_id, check=True)


def test_foreground_run_proxies_the_tty_without_console_socket(
        runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(terminal_config(["sh"]))
    result = runtime.runtime("run", "--bundle", str(bundle), unique("c"),
                             input=b"tty; echo $((6*7)); exit 5\n", timeout=30)
    assert result.returncode == 5, result.stderr
    assert b"/dev/pts/0" in result.stdout
    assert b"42" in result.stdout


def test_terminal_without_console_socket_is_refused_for_create(
        runtime: RuntimeHarness) -> None:
    bundle = runtime.bundle(terminal_config(["sh"]))
    container_id = unique("c")
    result = sampan_runc(runtime, "create", "--bundle", str(bundle), container_id)
    assert result.returncode != 0
    assert b"console socket" in result.stderr
    assert not (runtime.root / container_id).exists()


def test_console_socket_without_terminal_is_refused(runtime: RuntimeHarness,
                                                     console: ConsoleSocket) -> None:
    bundle = runtime.bundle(base_config(["true"]))
    container_id = unique("c")
    result = sampan_runc(runtime, "create", "--bundle", str(bundle), "--console-socket",
                         console.path, container_id)
    assert result.returncode != 0
    assert b"console socket" in result.stderr
