"""``sampan-runc --standby``: the real launcher as a runtime fork server; each request (the
command line and three fds over a SOCK_SEQPACKET socket) must behave as ``sampan-runc
<arguments>`` would, and the server reports each child's pid and exit status."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "bin" / "sampan-runc"


class Server:
    def __init__(self) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen([str(LAUNCHER), "--standby"], stdin=theirs.fileno(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        self.control.settimeout(30)

    def call(self, arguments: list[str]) -> tuple[int, int, bytes, bytes]:
        """(pid, exit code, stdout, stderr) of one call."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            socket.send_fds(self.control, ["\0".join(arguments).encode()],
                            [devnull, out_w, err_w])
        finally:
            for fd in (devnull, out_w, err_w):
                os.close(fd)
        kind, pid_text = self.control.recv(4096).decode().split()
        assert kind == "pid"
        kind, exited, status = self.control.recv(4096).decode().split()
        assert (kind, exited) == ("exit", pid_text)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            return int(pid_text), os.waitstatus_to_exitcode(int(status)), out.read(), err.read()

    def close(self) -> int:
        self.control.close()
        return self.process.wait(30)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.control.close()
            try:
                running.process.wait(10)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


def test_each_request_runs_as_the_command_line_would(server: Server) -> None:
    first = server.call(["--version"])
    second = server.call(["--version"])
    assert first[1] == second[1] == 0
    assert first[2].startswith(b"sampan-runc version ") and first[2] == second[2]
    assert first[0] != second[0] != server.process.pid  # a fork per call


def test_errors_and_exit_codes_come_back_like_a_fresh_runtime(server: Server) -> None:
    with tempfile.TemporaryDirectory(prefix="sampan-test-standby-") as root:
        log = os.path.join(root, "runtime.log")
        _, code, _, _ = server.call(["--root", root, "--log", log, "--log-format", "json",
                                     "state", "sampan-test-no-such-container"])
        assert code == 1
        with open(log) as handle:
            text = handle.read()
        assert '"level": "error"' in text or '"level":"error"' in text, text
        assert "does not exist" in text  # runc's words
    _, code, _, err = server.call(["no-such-verb"])
    assert code == 1 and b"no-such-verb" in err


def test_server_exits_when_its_caller_goes_away(server: Server) -> None:
    assert server.close() == 0
