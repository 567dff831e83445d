"""Runtime processes started ahead of need (``sampan-runc --standby``).

A runtime call through a fresh ``sampan-runc`` pays Python's start-up and imports (about
40 ms here) before any work; a standby has paid them already and waits for its command line
and stdio on a socket (see ``sampan.runtime.standby``). The pool keeps ``size`` of them per
runtime path; taking one starts its replacement. Only ``sampan-runc`` speaks this protocol:
for runc or crun (or any other path) ``take`` returns None and the caller spawns as before.

A standby is our child like any runtime call: it is reaped by the same loop, and one that dies
while waiting (never given a call) is simply dropped (``exited``). Closing the pool closes
their sockets: each then exits at once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

STANDBY_FLAG = "--standby"
DEFAULT_SIZE = 2
MAX_DEATHS = 3

Spawner = Callable[[list[str], int, int, int], int]


def standby_size() -> int:
    """``SAMPAN_RUNTIME_STANDBY``: how many to keep per runtime (0: none; default 2)."""
    try:
        return max(0, int(os.environ.get("SAMPAN_RUNTIME_STANDBY", DEFAULT_SIZE)))
    except ValueError:
        return DEFAULT_SIZE


def speaks_standby(path: str) -> bool:
    return os.path.basename(path) == "sampan-runc"


@dataclass
class Standby:
    pid: int
    control: socket.socket


class StandbyPool:
    def __init__(self, spawner: Spawner, size: int = DEFAULT_SIZE) -> None:
        self._spawn = spawner
        self.size = size
        self._ready: dict[str, list[Standby]] = {}
        self._pids: dict[int, str] = {}
        self._broken: set[str] = set()  # paths whose standbys cannot start or keep dying
        self._deaths: dict[str, int] = {}

    def _start(self, path: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = self._spawn([path, STANDBY_FLAG], theirs.fileno(), devnull, devnull)
        except OSError:
            ours.close()
            self._broken.add(path)
            return
        finally:
            theirs.close()
            os.close(devnull)
        self._pids[pid] = path
        self._ready.setdefault(path, []).append(Standby(pid, ours))

    def fill(self, path: str) -> None:
        if self.size <= 0 or path in self._broken or not speaks_standby(path):
            return
        while len(self._ready.get(path, ())) < self.size:
            self._start(path)
            if path in self._broken:
                return

    def run(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int | None:
        """Hand ``argv`` (argv[0] the runtime's path) and the stdio to a standby: its pid, or
        None when there is none for that runtime (the caller spawns)."""
        path = argv[0]
        if not speaks_standby(path) or self.size <= 0:
            return None
        self.fill(path)
        ready = self._ready.get(path) or []
        while ready:
            standby = ready.pop(0)
            self._pids.pop(standby.pid, None)
            try:
                socket.send_fds(standby.control, ["\0".join(argv[1:]).encode(
                    "utf-8", "surrogateescape")], [stdin, stdout, stderr])
            except OSError:
                continue  # it died waiting; it is reaped as an unknown child
            finally:
                standby.control.close()
            self.fill(path)
            return standby.pid
        return None

    def exited(self, pid: int) -> bool:
        """True when ``pid`` was a waiting standby (it died before being used)."""
        path = self._pids.pop(pid, None)
        if path is None:
            return False
        ready = self._ready.get(path) or []
        for standby in ready:
            if standby.pid == pid:
                standby.control.close()
                ready.remove(standby)
                break
        self._deaths[path] = self._deaths.get(path, 0) + 1
        if self._deaths[path] >= MAX_DEATHS:
            self._broken.add(path)  # e.g. a sampan-runc without --standby: spawn as before
        return True

    def close(self) -> None:
        for ready in self._ready.values():
            for standby in ready:
                standby.control.close()
        self._ready.clear()
        self._pids.clear()
