"""The supervisor's pool of runtime processes started ahead of need (``StandbyPool``), with a
recording spawner: what a standby receives, refills, other runtimes, dead standbys."""

from __future__ import annotations

import os
import socket

from sampan.supervisor.server.standby import MAX_DEATHS, StandbyPool, speaks_standby

RUNC = "/opt/sampan/bin/sampan-runc"


class FakeSpawner:
    """Records each spawn and keeps the standby's end of its control socket."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self.controls: dict[int, socket.socket] = {}
        self.next_pid = 100

    def __call__(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
        self.next_pid += 1
        self.argvs.append(argv)
        self.controls[self.next_pid] = socket.socket(fileno=os.dup(stdin))
        return self.next_pid

    def receive(self, pid: int) -> tuple[list[str], list[int]]:
        message, fds, _, _ = socket.recv_fds(self.controls[pid], 65536, 3)
        return message.decode().split("\0"), fds

    def close(self) -> None:
        for control in self.controls.values():
            control.close()


def test_only_sampan_runc_speaks_standby() -> None:
    assert speaks_standby(RUNC)
    assert not speaks_standby("/usr/sbin/runc")
    assert not speaks_standby("/usr/bin/crun")


def test_a_call_goes_to_a_ready_standby_with_its_stdio_and_is_replaced() -> None:
    spawner = FakeSpawner()
    pool = StandbyPool(spawner, size=2)
    try:
        pool.fill(RUNC)
        assert spawner.argvs == [[RUNC, "--standby"]] * 2
        first = next(iter(spawner.controls))
        read_end, write_end = os.pipe()
        try:
            pid = pool.run([RUNC, "--root", "/r", "kill", "c1", "9"], read_end, write_end,
                           write_end)
            assert pid == first
            argv, fds = spawner.receive(first)
            assert argv == ["--root", "/r", "kill", "c1", "9"]
            assert len(fds) == 3
            os.write(fds[1], b"through the standby's stdout")
            assert os.read(read_end, 100) == b"through the standby's stdout"
            for fd in fds:
                os.close(fd)
        finally:
            os.close(read_end)
            os.close(write_end)
        assert len(spawner.argvs) == 3  # the replacement
        assert not pool.exited(first)  # used: its exit is a runtime call's, not the pool's
    finally:
        pool.close()
        spawner.close()


def test_other_runtimes_and_size_zero_spawn_as_before() -> None:
    spawner = FakeSpawner()
    try:
        assert StandbyPool(spawner, size=2).run(["/usr/sbin/runc", "state", "x"], 0, 1, 2) \
            is None
        assert StandbyPool(spawner, size=0).run([RUNC, "state", "x"], 0, 1, 2) is None
        assert spawner.argvs == []
    finally:
        spawner.close()


def test_a_standby_that_died_is_skipped_and_repeated_deaths_stop_the_pool() -> None:
    spawner = FakeSpawner()
    pool = StandbyPool(spawner, size=1)
    try:
        pool.fill(RUNC)
        dead = next(iter(spawner.controls))
        assert pool.exited(dead)
        for _ in range(MAX_DEATHS - 1):
            pool.fill(RUNC)
            assert pool.exited(spawner.next_pid)
        spawned = len(spawner.argvs)
        assert pool.run([RUNC, "state", "x"], 0, 1, 2) is None  # broken: the caller spawns
        assert len(spawner.argvs) == spawned
    finally:
        pool.close()
        spawner.close()


def test_a_standby_whose_socket_is_gone_is_passed_over() -> None:
    spawner = FakeSpawner()
    pool = StandbyPool(spawner, size=2)
    try:
        pool.fill(RUNC)
        first, second = list(spawner.controls)
        spawner.controls.pop(first).close()  # died before it was reaped
        pid = pool.run([RUNC, "state", "x"], 0, 1, 2)
        assert pid == second
        assert spawner.receive(second)[0] == ["state", "x"]
    finally:
        pool.close()
        spawner.close()
