"""TLS for the tcp:// listeners, terminated here so that a client's half-close works.

asyncio's TLS transport ends the whole connection when the peer sends ``close_notify``, but
the docker CLI half-closes a hijacked attach exactly that way (Go's ``tls.Conn.CloseWrite``,
sent as soon as its stdin ends, or at once when it attaches no stdin) and then keeps reading
the output. So the TLS records are handled with ``ssl.MemoryBIO`` and the HTTP connection
runs, unchanged, over a socketpair:

```
client ══TLS══▶ raw TCP ──decrypt──▶ pair ──▶ HTTP connection (as on the unix socket)
   close_notify ──────────────────▶ SHUT_WR  (the server sees EOF on stdin only)
client ◀══TLS══ raw TCP ◀─encrypt── pair ◀── output, until the server closes
                   our close_notify ◀── EOF
```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

log = logging.getLogger("sampan.api")

HANDSHAKE_TIMEOUT = 30.0
_READ_SIZE = 64 * 1024

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _TLSPeer:
    """One TLS session over a raw stream: records in, records out, through memory BIOs."""

    def __init__(self, context: ssl.SSLContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.reader = reader
        self.writer = writer

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.writer.write(data)

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                await self.writer.drain()
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionResetError(
                        "the client closed during the TLS handshake") from None
                self.incoming.write(data)

    async def to_plain(self, writer: asyncio.StreamWriter) -> None:
        """Decrypt the client's records into ``writer``; its close_notify (or the TCP
        connection's end) becomes a half-close of ``writer``."""
        try:
            while True:
                # Decrypt what the BIO holds first: records can arrive with the handshake.
                closed = False
                while True:
                    try:
                        plain = self.tls.read(_READ_SIZE)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLZeroReturnError:  # close_notify
                        closed = True
                        break
                    if not plain:
                        closed = True
                        break
                    writer.write(plain)
                self.flush()  # post-handshake messages (TLS 1.3 tickets, key updates)
                await writer.drain()
                if closed:
                    return
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    return
                self.incoming.write(data)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.debug("tls: reading from the client: %s", exc)
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def from_plain(self, reader: asyncio.StreamReader) -> None:
        """Encrypt what ``reader`` gives to the client; at its end send close_notify."""
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                self.tls.write(data)
                self.flush()
                await self.writer.drain()
        with contextlib.suppress(ssl.SSLError):
            self.tls.unwrap()  # queues our close_notify; the client's may never come
        with contextlib.suppress(ConnectionError, OSError):
            self.flush()
            await self.writer.drain()


async def serve_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    context: ssl.SSLContext, handle: Handler, *, limit: int) -> None:
    """Terminate TLS on one accepted TCP connection and run ``handle`` on the plain side.
    A failed handshake (no client certificate, one from another CA, not TLS at all) closes
    the connection before any HTTP is read."""
    peer = _TLSPeer(context, reader, writer)
    try:
        await asyncio.wait_for(peer.handshake(), HANDSHAKE_TIMEOUT)
    except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
        log.info("tls handshake with %s failed: %s", writer.get_extra_info("peername"), exc)
        with contextlib.suppress(Exception):
            peer.flush()  # the alert, if any
        writer.close()
        return
    ours, theirs = socket.socketpair()
    try:
        plain_reader, plain_writer = await asyncio.open_unix_connection(sock=ours,
                                                                        limit=limit)
        inner_reader, inner_writer = await asyncio.open_unix_connection(sock=theirs,
                                                                        limit=limit)
    except BaseException:
        ours.close()
        theirs.close()
        writer.close()
        raise
    handler = asyncio.ensure_future(handle(inner_reader, inner_writer))
    inbound = asyncio.ensure_future(peer.to_plain(plain_writer))
    try:
        await peer.from_plain(plain_reader)  # ends when the HTTP side closes
    finally:
        # The handler closed its side (that ended from_plain): give it a moment to finish.
        with contextlib.suppress(BaseException):
            await asyncio.wait({handler}, timeout=5)
        for task in (inbound, handler):
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for stream in (plain_writer, inner_writer, writer):
            stream.close()
            with contextlib.suppress(Exception):
                await stream.wait_closed()
