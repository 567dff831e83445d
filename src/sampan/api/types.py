"""Types shared by the Engine API routers and the backends that implement them.

The routers parse HTTP (paths, query strings, JSON bodies) into the typed arguments of their
backend Protocols; a backend never sees HTTP. What a backend returns is already shaped like
the Engine API (dicts with Docker's member names), or is one of the stream types below.

Conventions for every backend method:
- Errors are ``sampan.errdefs`` exceptions; ``api/errors.py`` maps them to status codes in one
  place (NotFound 404, Conflict 409, InvalidParameter 400, Forbidden 403, Unavailable 503,
  NotImplementedFeature 501, NotModified 304, System and anything else 500). Messages are
  what the CLI prints after "Error response from daemon: ", so name the object
  (``No such container: 3f2a`` / ``No such image: busybox:latest`` keep Docker's wording, the
  CLI and SDK match on them).
- Methods that stream are ``async def`` returning an ``AsyncIterator``: the coroutine does all
  the checks (so a 404 is still a plain error response) and the iterator only yields. The
  router sends the 200 headers between the two. An exception raised by the iterator after
  that is reported in-band (``{"errorDetail": {"message": m}, "error": m}`` for JSON
  streams) or ends the stream.
- The router may stop iterating at any time (client gone): it calls ``aclose()`` on async
  generators, so a ``finally`` in the backend runs.
- ``id`` arguments are what the client sent: a full ID, an unambiguous ID prefix, or a name
  (with or without the leading ``/``); the backend resolves them.

Changes after the first version (keep this list so implementers notice):
- ``AttachStream.close_stdin``: documented Docker's exact rules (when stdin is closed and
  when the attach ends instead); the signature is unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

JSON = dict[str, Any]
"""A JSON object with the Engine API's member names (``Id``, ``State``, ...)."""

Filters = dict[str, list[str]]
"""Parsed ``filters`` query parameter: key -> values, in the order received.

Both wire forms arrive here the same way: ``{"label": {"a=b": true}}`` (the Go CLI) and
``{"label": ["a=b"]}`` (docker-py). An absent or empty parameter is ``{}``. The router
does not check the keys: a backend raises ``errdefs.InvalidParameter("invalid filter
'x'")`` for a key it does not know (Docker answers 400).
"""


class StreamKind(enum.IntEnum):
    """The stream byte of stdcopy framing (moby pkg/stdcopy)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEMERR = 3


LogEntry = tuple[int, bytes]
"""One piece of output: (``StreamKind`` value, bytes).

For ``logs`` each entry is one json-file record: ``data`` is the line including its ``\\n``,
and with ``timestamps=True`` the backend prepends ``"<RFC3339Nano> "`` (e.g.
``2024-01-02T03:04:05.123456789Z hi\\n``), as Docker's daemon does.
For a TTY container the router writes ``data`` raw; otherwise it frames each entry with the
8-byte stdcopy header.
"""

@dataclass
class OutputStream:
    """What ``container_logs`` returns: the container's TTY flag (raw output when true,
    stdcopy frames when false) and its log entries."""

    tty: bool
    entries: AsyncIterator[LogEntry]


WaitCondition = Literal["not-running", "next-exit", "removed"]

RequestBody = AsyncIterator[bytes]
"""A request body as it arrives, chunk by chunk (never buffered whole: ``docker load`` sends
a 90 MB tar). Ends when the body ends. Used by image load and import."""


class AttachStream(Protocol):
    """A live connection to a process's stdio, for the hijacked endpoints.

    The router owns the client socket after ``101 UPGRADED``; it copies client bytes to
    ``write_stdin`` and calls ``close_stdin`` when the client's input ends (``SHUT_WR``:
    ``echo x | docker run -i busybox cat``), and copies ``read()`` results to the client
    (stdcopy-framed unless ``tty``) until ``read()`` returns ``None``. It always calls
    ``close()`` at the end (client gone, output ended, or detach keys typed), exactly once.
    """

    @property
    def tty(self) -> bool:
        """True when the process has a terminal: output is raw, one stream."""
        ...

    async def read(self) -> LogEntry | None:
        """The next piece of output, or ``None`` when the process's output has ended
        (the process exited and its pipes are drained). For a TTY the stream is 1."""
        ...

    async def write_stdin(self, data: bytes) -> None:
        """Write to the process's stdin. A no-op when the attach did not ask for stdin or
        the process has no open stdin. Never raises for a process that has exited."""
        ...

    async def close_stdin(self) -> None:
        """The client's input ended (half-close, or the client went away). Docker's rules
        (moby container/stream/attach.go):
        - the attach did not ask for stdin: nothing happens, output keeps flowing (the CLI
          half-closes right after the 101 when it sends no stdin);
        - no TTY and the container has ``StdinOnce`` (the CLI sets it for ``run -i``), or
          an exec without TTY: close the process's stdin (it sees EOF) and keep the output
          flowing: this is what ends ``echo x | docker run -i busybox cat``;
        - otherwise (a TTY, or no ``StdinOnce``): the process's stdin stays open and this
          attach ends: ``read()`` returns ``None`` from now on (so ``docker run -it`` and
          the CLI's own ctrl-p ctrl-q detach leave the container running)."""
        ...

    async def close(self) -> None:
        """Detach: release the connection to the process; the process keeps running.
        Must be safe to call after ``read()`` returned ``None`` and more than once."""
        ...
