"""The supervisor's runtime fork servers (``StandbyPool``) against a scripted fake server:
what a call sends, pid replies, exits relayed (also those read while a call waited), other
runtimes, a server that dies."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from sampan.supervisor.server.standby import MAX_DEATHS, StandbyPool, speaks_standby

RUNC = "/opt/sampan/bin/sampan-runc"


class FakeServer:
    """Spawner + the server's end of each control socket, answering like the real one."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self.controls: dict[int, socket.socket] = {}
        self.next_pid = 100
        self.next_child = 5000
        self.served: list[tuple[list[str], list[int]]] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
        self.next_pid += 1
        self.argvs.append(argv)
        control = socket.socket(fileno=os.dup(stdin))
        self.controls[self.next_pid] = control
        return self.next_pid

    def serve_one(self, pid: int, before_reply: list[bytes] | None = None) -> tuple[
            list[str], list[int]]:
        """Read one request and answer ``pid <child>`` (after ``before_reply`` packets)."""
        control = self.controls[pid]
        message, fds, _, _ = socket.recv_fds(control, 65536, 3)
        for packet in before_reply or []:
            control.send(packet)
        self.next_child += 1
        control.send(f"pid {self.next_child}".encode())
        return message.decode().split("\0"), fds

    def close(self) -> None:
        for control in self.controls.values():
            control.close()


class Loop:
    def __init__(self) -> None:
        self.readers: dict[int, Callable[[], None]] = {}
        self.soon: list[Callable[[], None]] = []
        self.exits: list[tuple[int, int]] = []

    def watch(self, fd: int, callback: Callable[[], None] | None) -> None:
        if callback is None:
            self.readers.pop(fd, None)
        else:
            self.readers[fd] = callback

    def later(self, fn: Callable[[], None]) -> None:
        self.soon.append(fn)

    def run_soon(self) -> None:
        soon, self.soon = self.soon, []
        for fn in soon:
            fn()


def _pool(server: FakeServer, loop: Loop) -> StandbyPool:
    return StandbyPool(server, loop.watch, lambda pid, status: loop.exits.append((pid, status)),
                       later=loop.later)


def _answer_next_request(server: FakeServer, pid: int,
                         before_reply: list[bytes] | None = None) -> None:
    """The fake answers from a thread (the pool waits for the reply synchronously)."""
    thread = threading.Thread(target=lambda: server.served.append(
        server.serve_one(pid, before_reply)))
    thread.start()
    server.threads.append(thread)


def test_only_sampan_runc_speaks_standby() -> None:
    assert speaks_standby(RUNC)
    assert not speaks_standby("/usr/sbin/runc")
    assert not speaks_standby("/usr/bin/crun")


def test_a_call_is_a_fork_of_the_server_with_its_stdio_and_its_exit_is_relayed() -> None:
    server, loop = FakeServer(), Loop()
    pool = _pool(server, loop)
    try:
        pool.fill(RUNC)
        assert server.argvs == [[RUNC, "--standby"]]
        (server_pid,) = server.controls
        read_end, write_end = os.pipe()
        try:
            _answer_next_request(server, server_pid)
            child = pool.run([RUNC, "--root", "/r", "kill", "c1", "9"], read_end, write_end,
                             write_end)
            for thread in server.threads:
                thread.join(10)
            assert child == 5001
            argv, fds = server.served[0]
            assert argv == ["--root", "/r", "kill", "c1", "9"]
            os.write(fds[1], b"through the call's stdout")
            assert os.read(read_end, 100) == b"through the call's stdout"
            for fd in fds:
                os.close(fd)
        finally:
            os.close(read_end)
            os.close(write_end)
        assert server.argvs == [[RUNC, "--standby"]]  # one server serves every call
        server.controls[server_pid].send(b"exit 5001 768")
        (reader,) = loop.readers.values()
        reader()
        assert loop.exits == [(5001, 768)]
        assert not pool.exited(5001)  # a call's child, not a server
    finally:
        pool.close()
        server.close()


def test_exits_read_while_a_call_waits_are_handed_over_later() -> None:
    server, loop = FakeServer(), Loop()
    pool = _pool(server, loop)
    try:
        pool.fill(RUNC)
        (server_pid,) = server.controls
        _answer_next_request(server, server_pid, before_reply=[b"exit 4000 0"])
        assert pool.run([RUNC, "state", "x"], 0, 1, 2) == 5001
        for thread in server.threads:
            thread.join(10)
        assert loop.exits == []  # never from inside the call
        loop.run_soon()
        assert loop.exits == [(4000, 0)]
        for fd in server.served[0][1]:
            os.close(fd)
    finally:
        pool.close()
        server.close()


def test_other_runtimes_and_disabled_pools_spawn_as_before() -> None:
    server, loop = FakeServer(), Loop()
    try:
        assert _pool(server, loop).run(["/usr/sbin/runc", "state", "x"], 0, 1, 2) is None
        disabled = StandbyPool(server, loop.watch, lambda pid, status: None, loop.later,
                               enabled=False)
        assert disabled.run([RUNC, "state", "x"], 0, 1, 2) is None
        assert server.argvs == []
    finally:
        server.close()


def test_a_dead_server_is_replaced_and_one_that_keeps_dying_is_given_up() -> None:
    server, loop = FakeServer(), Loop()
    pool = _pool(server, loop)
    try:
        for death in range(MAX_DEATHS):
            pool.fill(RUNC)
            assert len(server.argvs) == death + 1
            assert pool.exited(server.next_pid)
            assert loop.readers == {}
        assert pool.run([RUNC, "state", "x"], 0, 1, 2) is None  # broken: the caller spawns
        assert len(server.argvs) == MAX_DEATHS
    finally:
        pool.close()
        server.close()


def test_a_server_that_hangs_up_during_a_call_falls_back_to_spawning() -> None:
    server, loop = FakeServer(), Loop()
    pool = _pool(server, loop)
    try:
        pool.fill(RUNC)
        (server_pid,) = server.controls
        server.controls.pop(server_pid).close()  # gone before answering
        assert pool.run([RUNC, "state", "x"], 0, 1, 2) is None
        assert loop.readers == {}
    finally:
        pool.close()
        server.close()
