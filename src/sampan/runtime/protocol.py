"""The parent <-> init protocol of ``sampan-runc create``/``exec``.

One SOCK_SEQPACKET socketpair; each message is one JSON object ``{"kind": ..., ...}``, fds ride
along with SCM_RIGHTS. The stage-1 child (joins/unshares namespaces) and the init it forks share
the child end.

::

    parent (host namespaces)          stage 1 (fork)               init (fork of stage 1, pid 1)
      |--- GO ------------------------->| setns / unshare(user)       |
      |<-- USERMAP_REQUEST -------------|   (only with a user ns)     |
      |--- write uid_map, gid_map       |                             |
      |--- USERMAP_DONE --------------->| unshare(rest), fork ------>|
      |<-- INIT_PID ---------------------| exit                        | mounts ...
      |--- cgroup add, resources; CGROUP_DONE ----------------------->| unshare(cgroup)
      |<-- HOOKS_REQUEST ---------------------------------------------| (prestart hooks)
      |--- run hooks; HOOKS_DONE ------------------------------------>| pivot_root, console...
      |<-- READY ------------------------------------------------------| waits on exec.fifo
    Any stage that fails sends ERROR {step, message} before it exits: never a bare EOF.
"""


from __future__ import annotations

import array
import json
import socket

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GO = "go"
USERMAP_REQUEST = "usermap-request"
USERMAP_DONE = "usermap-done"
INIT_PID = "init-pid"
CGROUP_DONE = "cgroup-done"
HOOKS_REQUEST = "hooks-request"
HOOKS_DONE = "hooks-done"
READY = "ready"
ERROR = "error"
PTY_MASTER = "pty-master"

_MAX_MESSAGE = 65536


class ProtocolError(Exception):
    """The other side broke the protocol or went away without an error message."""


def channel() -> tuple[socket.socket, socket.socket]:
    """A (parent end, child end) pair."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, kind: str, fds: list[int] | None = None, **fields: Any) -> None:
    payload = json.dumps({"kind": kind, **fields}).encode()
    if fds:
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(payload)


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Next message and any fds it carried; ProtocolError on EOF."""
    fd_space = socket.CMSG_SPACE(4 * 4)
    try:
        data, ancillary, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, fd_space)
    except ConnectionResetError:
        # the peer exited with our last message unread: the kernel reports ECONNRESET once,
        # ahead of what the peer sent before it exited (its ERROR): read on
        data, ancillary, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, fd_space)
    if not data:
        raise ProtocolError("the container's init exited without reporting an error")
    fds: list[int] = []
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(raw[: len(raw) - (len(raw) % received.itemsize)])
            fds.extend(received)
    message: dict[str, Any] = json.loads(data)
    return message, fds


def expect(sock: socket.socket, kind: str) -> tuple[dict[str, Any], list[int]]:
    """Receive a message of ``kind``; an ERROR message becomes an InitError."""
    message, fds = receive(sock)
    if message["kind"] == ERROR:
        raise InitError(message.get("step", "init"), message.get("message", "unknown error"),
                        message.get("errno", 0))
    if message["kind"] != kind:
        raise ProtocolError(f"expected {kind} from the container's init, got {message['kind']}")
    return message, fds


def queued_error(sock: socket.socket) -> dict[str, Any] | None:
    """The ERROR message a child sent before it exited, if one waits unread; never blocks.

    A child that fails early (exec: a missing executable) may be gone before the parent's
    next step (cgroup move, reply): that step then fails with ESRCH or EPIPE, and the real
    cause is the message still queued on the socket.
    """
    sock.setblocking(False)
    try:
        while True:
            message, _fds = receive(sock)
            if message.get("kind") == ERROR:
                return message
    except (OSError, ProtocolError, ValueError):
        return None
    finally:
        sock.setblocking(True)


class InitError(Exception):
    """A setup step inside the container's init failed; carries the step and the message."""

    def __init__(self, step: str, message: str, errno: int = 0) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message
        self.errno = errno


def send_error(sock: socket.socket, step: str, exc: BaseException) -> str | None:
    """Report a failed step; never raises (the caller is about to exit).

    Returns the text when nobody is listening any more (after READY the runtime has exited),
    so the caller can print it on the container's stderr instead.
    """
    errno = getattr(exc, "errno", 0) or 0
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    try:
        send(sock, ERROR, step=step, message=text, errno=errno)
    except OSError:
        return f"{step}: {text}"
    return None
