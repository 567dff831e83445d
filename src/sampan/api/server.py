"""The Engine API server: asyncio streams + h11 on a unix socket (and TCP+TLS when asked).

One coroutine per connection parses requests with h11, strips the ``/v1.xx`` prefix, checks
the version, finds the handler in the route table and writes its ``Response``:

```
client ──request──▶ _Connection.run ── h11 ──▶ RouteTable.match ──▶ handler(Request)
                                                                    │ Response
       ◀── JSON / empty / bytes (Content-Length) ───────────────────┤
       ◀── chunked, headers flushed first, one flush per chunk ─────┤ StreamResponse
       ◀──▶ 101 UPGRADED, then raw socket (hijack.py) ──────────────┘ HijackResponse
```

Errors raised by handlers become ``{"message": ...}`` with the status from ``errors.py``.
A client that goes away during a stream cancels the stream (``docker run -d`` drops its
``/wait``); a half-close during a hijack closes the process's stdin only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import h11

from sampan import errdefs
from sampan.api import errors
from sampan.api.hijack import run_hijack
from sampan.api.http import (
    BytesResponse,
    EmptyResponse,
    HijackResponse,
    JSONResponse,
    Request,
    Response,
    StreamResponse,
    json_line,
)
from sampan.api.routers.archive import ArchiveBackend
from sampan.api.routers.containers import ContainersBackend
from sampan.api.routers.exec import ExecBackend
from sampan.api.routers.images import ImagesBackend
from sampan.api.routers.networks import NetworksBackend
from sampan.api.routers.system import SystemBackend
from sampan.api.routers.volumes import VolumesBackend
from sampan.api.routes import RouteTable
from sampan.api.tls import serve_tls
from sampan.api.version import API_VERSION, check_version, format_version, parse_version

log = logging.getLogger("sampan.api")

SERVER_VERSION = "0.1.0"
MAX_HEADER_BYTES = 64 * 1024
_READ_SIZE = 256 * 1024
HIJACK_OUTPUT_DELAY = 0.05
_VERSIONED = re.compile(r"^/v([0-9.]+)(/.*)$")


@dataclass
class Backends:
    """The daemon services behind the routers; ``cmd/sampand.py`` wires them in."""

    system: SystemBackend
    containers: ContainersBackend
    exec: ExecBackend
    images: ImagesBackend
    networks: NetworksBackend | None = None  # None: no /networks routes
    volumes: VolumesBackend | None = None  # None: no /volumes routes
    archive: ArchiveBackend | None = None  # None: no /containers/{id}/archive routes


def common_headers() -> list[tuple[str, str]]:
    return [
        ("Api-Version", format_version(API_VERSION)),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        ("Server", f"Sampan/{SERVER_VERSION} (linux)"),
    ]


class Server:
    """A running API server; ``close()`` stops listening and ends open connections."""

    def __init__(self, servers: list[asyncio.Server], table: RouteTable) -> None:
        self._servers = servers
        self.table = table
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def tcp_addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs of the TCP listeners (to find a port chosen by the OS)."""
        found = []
        for server in self._servers:
            for sock in server.sockets:
                address = sock.getsockname()
                if isinstance(address, tuple):
                    found.append((str(address[0]), int(address[1])))
        return found

    def track(self, task: asyncio.Task[None]) -> None:
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def serve_forever(self) -> None:
        await asyncio.gather(*(server.serve_forever() for server in self._servers))


async def serve(
    socket_path: str | None,
    backends: Backends,
    *,
    socket_mode: int = 0o660,
    tcp: tuple[str, int] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Server:
    """Listen on ``socket_path`` (a stale socket file is replaced) and, when ``tcp`` is
    given, on that address (TLS with ``ssl_context``; without one the caller must have
    warned loudly). Returns once listening."""
    from sampan.api.routers import build_routes

    table = RouteTable(build_routes(backends))
    holder: list[Server] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None and holder:
            holder[0].track(task)
        with contextlib.suppress(asyncio.CancelledError):  # server closing
            await _Connection(reader, writer, table).run()

    servers: list[asyncio.Server] = []
    if socket_path is not None:
        with contextlib.suppress(FileNotFoundError):
            if _is_socket(socket_path):
                os.unlink(socket_path)
        servers.append(
            await asyncio.start_unix_server(on_connect, socket_path, limit=MAX_HEADER_BYTES)
        )
        os.chmod(socket_path, socket_mode)
    if tcp is not None:
        handler = on_connect
        if ssl_context is not None:
            context = ssl_context

            async def on_tls_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                task = asyncio.current_task()
                if task is not None and holder:
                    holder[0].track(task)
                with contextlib.suppress(asyncio.CancelledError):  # server closing
                    await serve_tls(
                        reader,
                        writer,
                        context,
                        lambda r, w: _Connection(r, w, table).run(),
                        limit=MAX_HEADER_BYTES,
                    )

            handler = on_tls_connect  # TLS terminated in tls.py (half-close works)
        servers.append(
            await asyncio.start_server(handler, tcp[0], tcp[1], limit=MAX_HEADER_BYTES)
        )
    server = Server(servers, table)
    holder.append(server)
    return server


def _is_socket(path: str) -> bool:
    import stat

    return stat.S_ISSOCK(os.lstat(path).st_mode)


class _ClientGone(Exception):
    """The client closed the connection while we were writing."""


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, table: RouteTable
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.table = table
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.body_done = True
        self.hijacked = False
        self.user_agent = ""

    # ------------------------------------------------------------------ reading

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(_READ_SIZE)
            self.h11.receive_data(data)

    async def _read_body(self) -> AsyncIterator[bytes]:
        while not self.body_done:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                self.body_done = True
            else:
                raise errdefs.InvalidParameter("request body ended early")

    # ------------------------------------------------------------------ writing

    async def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise _ClientGone
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    async def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            await self._write(data)

    def _headers(self, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*common_headers(), *extra, ("Date", formatdate(usegmt=True))]

    async def _send_simple(
        self, status: int, body: bytes, content_type: str | None, head: bool,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        headers = list(extra or [])
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        await self._send(
            h11.Response(
                status_code=status,
                headers=self._headers(headers),
                reason=errors.REASONS.get(status, ""),
            )
        )
        if body and not head and status not in (204, 304):
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def _send_error(self, status: int, message: str, head: bool = False) -> None:
        await self._send_simple(status, errors.error_body(message), "application/json", head)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            await self._serve_requests()
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("connection failed")
        finally:
            if not self.hijacked:
                self.writer.close()
                with contextlib.suppress(Exception):
                    await self.writer.wait_closed()

    async def _serve_requests(self) -> None:
        while True:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as exc:
                if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    if "incomplete" in str(exc).lower() or "too long" in str(exc).lower():
                        status = 431
                    with contextlib.suppress(Exception):
                        await self._send_error(status, f"bad request: {exc}")
                        await self._linger()
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            self.body_done = False
            await self._handle(event)
            if self.hijacked:
                return
            if not self.body_done and not await self._drain_body():
                return
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _linger(self) -> None:
        """Before closing on a bad request, read (and drop) what the client is still
        sending, so that closing does not reset the connection under our answer."""
        if self.writer.can_write_eof():
            self.writer.write_eof()
        budget = 8 * 1024 * 1024
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                while budget > 0:
                    data = await self.reader.read(_READ_SIZE)
                    if not data:
                        return
                    budget -= len(data)

    async def _drain_body(self) -> bool:
        try:
            async for _ in self._read_body():
                pass
        except (h11.RemoteProtocolError, errdefs.InvalidParameter):
            return False
        return True

    async def _handle(self, event: h11.Request) -> None:
        method = event.method.decode("ascii", "replace").upper()
        target = event.target.decode("latin-1")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in event.headers
        }
        head = method == "HEAD"
        self.user_agent = headers.get("user-agent", "")
        log.debug("%s %s", method, target)
        raw_path, _, raw_query = target.partition("?")
        path = urllib.parse.unquote(raw_path)
        version = API_VERSION
        try:
            found = _VERSIONED.match(path)
            if found is not None:
                version = parse_version(found.group(1))
                path = found.group(2)
                check_version(version)
            matched = self.table.match(method, path)
            if matched is None:
                raise _NoRoute(404, f"page not found: {method} {path}")
            if matched is True:
                raise _NoRoute(405, f"method {method} not allowed on {path}")
            assert not isinstance(matched, bool)
            handler, params = matched
            request = Request(
                method=method,
                path=path,
                version=version,
                query=urllib.parse.parse_qs(raw_query, keep_blank_values=True),
                headers=headers,
                params=params,
                read_body=self._read_body,
            )
            response = await handler(request)
        except _NoRoute as exc:
            await self._send_error(exc.status, exc.message, head)
            return
        except (_ClientGone, asyncio.CancelledError):
            raise
        except h11.RemoteProtocolError as exc:
            await self._send_error(400, f"bad request: {exc}", head)
            return
        except Exception as exc:
            status = errors.status_for(exc)
            if status >= 500 and not isinstance(exc, errdefs.SampanError):
                log.exception("%s %s failed", method, path)
            await self._send_error(status, errors.message_for(exc), head)
            return
        await self._respond(response, head, version)

    async def _respond(self, response: Response, head: bool, version: tuple[int, int]) -> None:
        if isinstance(response, JSONResponse):
            body = json_line(response.body)
            await self._send_simple(response.status, body, "application/json", head)
        elif isinstance(response, EmptyResponse):
            await self._send_simple(response.status, b"", None, head)
        elif isinstance(response, BytesResponse):
            await self._send_simple(
                response.status, response.body, response.content_type, head, response.headers
            )
        elif isinstance(response, StreamResponse):
            await self._stream(response, head)
        else:
            await self._hijack(response, version)

    async def _stream(self, response: StreamResponse, head: bool) -> None:
        headers = list(response.headers)
        if response.content_type is not None:
            headers.append(("Content-Type", response.content_type))
        await self._send(
            h11.Response(
                status_code=response.status,
                headers=self._headers(headers),
                reason=errors.REASONS.get(response.status, ""),
            )
        )
        if head:
            await _close_iterator(response.chunks)
            await self._send(h11.EndOfMessage())
            return
        producer = asyncio.ensure_future(self._pump_chunks(response))
        watcher = asyncio.ensure_future(self._watch_client()) if self.body_done else None
        try:
            if watcher is None:
                await producer
            else:
                done, _ = await asyncio.wait(
                    {producer, watcher}, return_when=asyncio.FIRST_COMPLETED
                )
                if producer not in done:
                    producer.cancel()
                    with contextlib.suppress(BaseException):
                        await producer
                    raise _ClientGone
                producer.result()
        finally:
            for task in (producer, watcher):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        await self._send(h11.EndOfMessage())

    async def _pump_chunks(self, response: StreamResponse) -> None:
        chunks = response.chunks
        try:
            async for data in chunks:
                if data:
                    await self._send(h11.Data(data=data))
        except (_ClientGone, asyncio.CancelledError):
            raise
        except Exception as exc:
            tail = response.on_error(exc) if response.on_error is not None else None
            if not isinstance(exc, errdefs.SampanError):
                log.exception("stream failed")
            if tail:
                await self._send(h11.Data(data=tail))
        finally:
            await _close_iterator(chunks)

    async def _watch_client(self) -> None:
        """Returns when the client closes its side while a response streams."""
        while True:
            data = await self.reader.read(_READ_SIZE)
            if not data:
                return
            self.h11.receive_data(data)

    async def _hijack(self, response: HijackResponse, version: tuple[int, int]) -> None:
        self.hijacked = True
        if not self.body_done and not await self._drain_body():
            await response.stream.close()
            self.writer.close()
            return
        upgrade = self.h11.their_state is h11._state.MIGHT_SWITCH_PROTOCOL
        if upgrade:
            lines = [
                "HTTP/1.1 101 UPGRADED",
                f"Content-Type: {response.content_type}",
                "Connection: Upgrade",
                "Upgrade: tcp",
            ]
        else:
            lines = ["HTTP/1.1 200 OK", f"Content-Type: {response.content_type}"]
        if response.extra_headers or not upgrade:
            lines += [f"{name}: {value}" for name, value in common_headers()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        trailing, _closed = self.h11.trailing_data
        try:
            await self._write(head)
        except _ClientGone:
            await response.stream.close()
            self.writer.close()
            return
        # Clients built on Python's http.client (docker-py) read the 101 through a buffered
        # reader and then take the raw socket: output that arrived in the same read as the
        # headers is lost. Go's client keeps its buffer. So give other clients a moment to
        # read the headers before the first output (an exec may have printed already).
        delay = 0.0 if self.user_agent.startswith("Docker-Client/") else HIJACK_OUTPUT_DELAY
        await run_hijack(
            self.reader, self.writer, response.stream, bytes(trailing), response.detach_keys,
            first_output_delay=delay,
        )


class _NoRoute(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _close_iterator(iterator: AsyncIterator[bytes]) -> None:
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()

