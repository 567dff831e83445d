"""Joining the user's stdio to a hijacked connection (attach, ``run`` without ``-d``, exec).

```
stdin fd ──read──▶ detach-key matcher ──sendall──▶ socket      (EOF: shutdown(SHUT_WR))
stdout/stderr ◀── raw bytes (tty) or demultiplexed frames ◀── socket   (EOF: done)
```
The detach sequence is recognised here, before it reaches the daemon, so the CLI knows the
user detached rather than the process ended; the bytes of a partial match are held back
and sent when the match fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket

from sampan.client.stdcopy import STDERR, SYSTEM_ERROR, FrameSplitter

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """``"ctrl-p,ctrl-q"`` -> ``b"\\x10\\x11"``; raises ValueError for an unknown key."""
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        lowered = key.lower()
        if lowered.startswith("ctrl-") and len(key) == 6:
            char = lowered[5]
            if "a" <= char <= "z":
                out.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_SPECIAL:
                out.append(_CTRL_SPECIAL[char])
            else:
                raise ValueError(f"Unknown character: '{key}'")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class DetachMatcher:
    """Feeds input through; reports when the whole detach sequence has been typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward now, detached?)."""
        out = bytearray()
        for byte in data:
            if self.keys and byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[: self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out), False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class StreamResult:
    ENDED = "ended"
    DETACHED = "detached"


def pump(sock: socket.socket, leftover: bytes, *, tty: bool, stdin_fd: int | None,
         stdout_fd: int = 1, stderr_fd: int = 2, detach_keys: bytes | None = None,
         close_stdin_on_eof: bool = True) -> str:
    """Runs until the output ends (``"ended"``) or the user detaches (``"detached"``).
    ``stdin_fd`` None: nothing is sent (the connection stays open for output only)."""
    splitter = None if tty else FrameSplitter()
    matcher = DetachMatcher(detach_keys) if detach_keys and stdin_fd is not None else None

    def emit(data: bytes) -> None:
        if splitter is None:
            _write_all(stdout_fd, data)
            return
        for stream, payload in splitter.feed(data):
            if stream == SYSTEM_ERROR:
                _write_all(stderr_fd, payload)
            else:
                _write_all(stderr_fd if stream == STDERR else stdout_fd, payload)

    if leftover:
        emit(leftover)
    watching = [sock.fileno()] + ([stdin_fd] if stdin_fd is not None else [])
    sock.setblocking(True)
    while True:
        try:
            readable, _, _ = select.select(watching, [], [])
        except InterruptedError:
            continue
        if sock.fileno() in readable:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                return StreamResult.ENDED
            emit(data)
        if stdin_fd is not None and stdin_fd in readable:
            try:
                data = os.read(stdin_fd, 65536)
            except OSError:
                data = b""
            if not data:
                if matcher is not None and matcher.matched:
                    with contextlib.suppress(OSError):
                        sock.sendall(matcher.keys[: matcher.matched])
                watching.remove(stdin_fd)
                stdin_fd = None
                if close_stdin_on_eof:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                continue
            detached = False
            if matcher is not None:
                data, detached = matcher.feed(data)
            if data:
                try:
                    sock.sendall(data)
                except OSError:
                    pass
            if detached:
                return StreamResult.DETACHED
