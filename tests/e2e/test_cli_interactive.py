"""Acceptance item 2 of issue 7: ``sampan run -it busybox sh`` driven through a pty.

Types commands, resizes the terminal (TIOCSWINSZ + SIGWINCH, as a terminal emulator does),
detaches with ctrl-p ctrl-q, re-attaches with ``sampan attach`` and exits; checks the
container's state through the API and that the CLI leaves the terminal as it found it.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest
from cli_helpers import SAMPAN, api
from sampand_harness import Sampand, started_with_busybox


@pytest.fixture(scope="module")
def daemon() -> Iterator[Sampand]:
    started = started_with_busybox()
    try:
        yield started
    finally:
        started.close()


class PtySession:
    """``sampan <args>`` with a pty as its controlling terminal."""

    def __init__(self, daemon: Sampand, *args: str) -> None:
        self.master, slave = os.openpty()
        self.set_size(24, 80)
        self.slave_attrs = termios.tcgetattr(slave)
        env = {**daemon.env, "SAMPAN_HOST": f"unix://{daemon.socket_path}", "TERM": "xterm"}

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen([str(SAMPAN), *args], stdin=slave, stdout=slave,
                                        stderr=slave, env=env, start_new_session=True,
                                        preexec_fn=controlling_tty)
        self.slave = slave
        self.seen = b""

    def set_size(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def resize(self, rows: int, columns: int) -> None:
        self.set_size(rows, columns)
        self.process.send_signal(signal.SIGWINCH)

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def expect(self, wanted: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"did not see {wanted!r} in {self.seen[-500:]!r}"
            readable, _, _ = select.select([self.master], [], [], min(remaining, 0.5))
            if readable:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    break
        assert wanted in self.seen, f"did not see {wanted!r} in {self.seen[-500:]!r}"

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"sampan did not exit: {self.seen[-500:]!r}"
            readable, _, _ = select.select([self.master], [], [], 0.2)
            if readable:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    pass
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)
        os.close(self.slave)


def test_run_it_types_resizes_detaches_and_reattaches(daemon: Sampand) -> None:
    session = PtySession(daemon, "run", "-it", "--name", "tty1", "--network", "none",
                         "busybox", "sh")
    try:
        session.type(b"echo hello-$((40+2))\r")
        session.expect(b"hello-42")
        session.type(b"stty size\r")
        session.expect(b"24 80")
        session.resize(40, 132)
        time.sleep(0.3)  # the resize request races the next keystrokes otherwise
        session.type(b"stty size\r")
        session.expect(b"40 132")
        session.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert session.wait() == 0
        # The CLI restored the terminal it had put in raw mode.
        assert termios.tcgetattr(session.slave) == session.slave_attrs
    finally:
        session.close()
    status, info = api(daemon, "GET", "/containers/tty1/json")
    assert status == 200 and info["State"]["Running"] is True
    daemon.seen.add(info["Id"])

    again = PtySession(daemon, "attach", "tty1")
    try:
        again.type(b"echo back-$((1+1))\r")
        again.expect(b"back-2")
        again.type(b"exit 5\r")
        assert again.wait() == 5
        assert termios.tcgetattr(again.slave) == again.slave_attrs
    finally:
        again.close()
    status, info = api(daemon, "GET", "/containers/tty1/json")
    assert info["State"]["Running"] is False and info["State"]["ExitCode"] == 5


def test_custom_detach_keys_and_exec_it(daemon: Sampand) -> None:
    session = PtySession(daemon, "run", "-it", "--detach-keys", "ctrl-a", "--name", "tty2",
                         "--network", "none", "busybox", "sh")
    try:
        session.type(b"echo ready\r")
        session.expect(b"ready")
        session.type(b"\x01")
        assert session.wait() == 0
    finally:
        session.close()
    daemon.seen.add(api(daemon, "GET", "/containers/tty2/json")[1]["Id"])
    exec_session = PtySession(daemon, "exec", "-it", "tty2", "sh")
    try:
        exec_session.type(b"tty; exit 3\r")
        exec_session.expect(b"/dev/pts/")
        assert exec_session.wait() == 3
    finally:
        exec_session.close()
    assert api(daemon, "GET", "/containers/tty2/json")[1]["State"]["Running"] is True
    api(daemon, "DELETE", "/containers/tty2?force=1")
