"""A runtime fork server (``sampan-runc --standby``) per runtime path that speaks it.

A runtime call through a fresh ``sampan-runc`` pays Python's start-up and imports (about
40 ms of CPU here) before any work. The fork server has paid them once: each call is a
``fork`` of it, given its command line and stdio over a SOCK_SEQPACKET socket (see
``sampan.runtime.standby``). The server answers ``pid <pid>`` at once and ``exit <pid>
<status>`` when that child has exited; the exit goes to ``on_exit`` exactly as if we had
reaped the child ourselves. Only ``sampan-runc`` speaks this: for runc or crun (or any other
path) ``run`` returns None and the caller spawns as before.

If a server dies, its running children are re-parented to us (we are a child subreaper) and
reaped by our own loop; the next call starts a new server. A path whose server keeps dying
(``MAX_DEATHS``) is no longer used.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

STANDBY_FLAG = "--standby"
MAX_DEATHS = 3
REPLY_TIMEOUT = 10.0

Spawner = Callable[[list[str], int, int, int], int]
Watch = Callable[[int, Callable[[], None] | None], None]  # reactor.set_reader
ExitHandler = Callable[[int, int], None]  # (pid, wait status)


def standby_enabled() -> bool:
    """``SAMPAN_RUNTIME_STANDBY=0`` turns the fork servers off (every call spawns)."""
    return os.environ.get("SAMPAN_RUNTIME_STANDBY", "1") != "0"


def speaks_standby(path: str) -> bool:
    return os.path.basename(path) == "sampan-runc"


@dataclass
class ForkServer:
    pid: int
    control: socket.socket
    exits: list[tuple[int, int]] = field(default_factory=list)  # read while awaiting a pid


class StandbyPool:
    def __init__(self, spawner: Spawner, watch: Watch, on_exit: ExitHandler,
                 later: Callable[[Callable[[], None]], object], enabled: bool = True) -> None:
        """``watch``: the loop's set_reader; ``later(fn)``: run ``fn`` from the loop soon
        (exits read while a call waited for its pid are handed over from there, never from
        inside the call)."""
        self._spawn = spawner
        self._watch = watch
        self._on_exit = on_exit
        self._later = later
        self.enabled = enabled
        self._servers: dict[str, ForkServer] = {}
        self._pids: dict[int, str] = {}  # server pid -> runtime path
        self._deaths: dict[str, int] = {}
        self._broken: set[str] = set()

    # ---- the servers
    def fill(self, path: str) -> None:
        """Start the server for ``path`` if it should run and does not."""
        if not self.enabled or path in self._broken or not speaks_standby(path) or \
                path in self._servers:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
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
        server = ForkServer(pid, ours)
        self._servers[path] = server
        self._pids[pid] = path
        self._watch(ours.fileno(), lambda: self._readable(path, server))

    def _drop(self, path: str, server: ForkServer) -> None:
        if self._servers.get(path) is server:
            del self._servers[path]
        self._watch(server.control.fileno(), None)
        server.control.close()

    def _dispatch(self, server: ForkServer) -> None:
        exits, server.exits = server.exits, []
        for pid, status in exits:
            self._on_exit(pid, status)

    def _readable(self, path: str, server: ForkServer) -> None:
        while True:
            try:
                packet = server.control.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                packet = b""
            if not packet:  # the server is gone; its children come to our own loop
                self._drop(path, server)
                break
            self._parse(server, packet)
        self._dispatch(server)

    @staticmethod
    def _parse(server: ForkServer, packet: bytes) -> int | None:
        """Queue an ``exit``; return the pid of a ``pid`` reply."""
        words = packet.decode(errors="replace").split()
        if len(words) == 3 and words[0] == "exit":
            server.exits.append((int(words[1]), int(words[2])))
        elif len(words) == 2 and words[0] == "pid":
            return int(words[1])
        return None

    # ---- calls
    def run(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> int | None:
        """Run ``argv`` (argv[0] the runtime's path) with that stdio in a fork of the
        server: the child's pid, or None when there is no server for that runtime (the
        caller spawns). The child's exit comes to ``on_exit``."""
        path = argv[0]
        self.fill(path)
        server = self._servers.get(path)
        if server is None:
            return None
        try:
            socket.send_fds(server.control, ["\0".join(argv[1:]).encode(
                "utf-8", "surrogateescape")], [stdin, stdout, stderr])
            pid = self._await_pid(server)
        except (OSError, ValueError):
            pid = None
        if pid is None:
            self._drop(path, server)
        if server.exits:  # read while waiting: handed over after this call returns
            self._later(lambda: self._dispatch(server))
        return pid

    def _await_pid(self, server: ForkServer) -> int | None:
        """The reply to the request just sent (a fork takes a millisecond or two)."""
        while True:
            ready, _, _ = select.select([server.control], [], [], REPLY_TIMEOUT)
            if not ready:
                return None
            packet = server.control.recv(4096)
            if not packet:
                return None
            pid = self._parse(server, packet)
            if pid is not None:
                return pid
            if packet.startswith(b"error"):
                return None

    def exited(self, pid: int) -> bool:
        """True when ``pid`` was a fork server (our child) that has died."""
        path = self._pids.pop(pid, None)
        if path is None:
            return False
        server = self._servers.get(path)
        if server is not None and server.pid == pid:
            self._drop(path, server)
            if server.exits:
                self._later(lambda: self._dispatch(server))
        self._deaths[path] = self._deaths.get(path, 0) + 1
        if self._deaths[path] >= MAX_DEATHS:
            self._broken.add(path)  # e.g. a sampan-runc without --standby: spawn as before
        return True

    def close(self) -> None:
        for path, server in list(self._servers.items()):
            self._drop(path, server)
        self._pids.clear()
