"""Attach streams: a process's stdio as the API's hijacked endpoints use it.

The supervisor's attach connection carries frames ``stream (1 byte) + length (4, BE) +
data`` one way and raw stdin bytes the other; a half-close of our side closes the process's
stdin. An attach may be made before the process exists (``docker run`` attaches to a created
container, then starts it): the stream waits until the daemon connects it at start, so no
output is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable

_HEADER = struct.Struct(">BI")
log = logging.getLogger("sampand.attach")

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ProcessAttach:
    """One attacher (implements the API's ``AttachStream``)."""

    def __init__(self, *, tty: bool, want_stdin: bool, stdin_once: bool,
                 replay: list[tuple[int, bytes]] | None = None,
                 before_end: Callable[[], Awaitable[None]] | None = None) -> None:
        self._tty = tty
        self._want_stdin = want_stdin
        self._stdin_once = stdin_once
        self._replay = list(replay or [])
        self._before_end = before_end
        self._connection: asyncio.Future[Connection | None] = (
            asyncio.get_running_loop().create_future())
        self._closed = False

    @property
    def tty(self) -> bool:
        return self._tty

    @property
    def wants_stdin(self) -> bool:
        return self._want_stdin

    @property
    def keeps_stdin(self) -> bool:
        """Whether the process's stdin must stay open when this attach ends (what the
        supervisor's attach is told: only a non-TTY ``StdinOnce`` attach closes it)."""
        return not (self._want_stdin and self._stdin_once and not self._tty)

    @property
    def pending(self) -> bool:
        return not self._connection.done()

    def connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connection.done() or self._closed:
            writer.close()
            return
        self._connection.set_result((reader, writer))

    def end(self) -> None:
        """No (more) live output: the stream ends after the replay."""
        if not self._connection.done():
            self._connection.set_result(None)

    async def read(self) -> tuple[int, bytes] | None:
        if self._replay:
            return self._replay.pop(0)
        connection = await self._connection
        if connection is None:
            return None
        reader = connection[0]
        try:
            stream, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
            data = await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            if self._before_end is not None:
                before_end, self._before_end = self._before_end, None
                await before_end()
            return None
        return (1 if self._tty else stream), data

    async def write_stdin(self, data: bytes) -> None:
        if not self._want_stdin or self._closed:
            return
        connection = await self._connection
        if connection is None:
            return
        writer = connection[1]
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(data)
            await writer.drain()

    async def close_stdin(self) -> None:
        """The client's input ended. Docker's rules (moby container/stream/attach.go):
        an attach without stdin goes on; a non-TTY ``StdinOnce`` one (and a non-TTY exec)
        closes the process's stdin and goes on streaming; otherwise the process keeps its
        stdin (for the next attacher) and this attach ends."""
        log.debug("attach input ended (stdin %s, keeps stdin %s)", self._want_stdin,
                  self.keeps_stdin)
        if not self._want_stdin:
            return
        if not self.keeps_stdin:
            connection = await self._connection
            if connection is None:
                return
            with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                connection[1].write_eof()
            return
        # End the stream: closing our side makes ``read()`` see the end; the supervisor
        # was told to keep the process's stdin open (``keep_stdin``).
        self._before_end = None
        if not self._connection.done():
            self._connection.set_result(None)
            return
        connection = self._connection.result()
        if connection is not None:
            connection[1].close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._connection.done():
            self._connection.set_result(None)
            return
        connection = self._connection.result()
        if connection is not None:
            connection[1].close()
            with contextlib.suppress(ConnectionError, OSError):
                await connection[1].wait_closed()
