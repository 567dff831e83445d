"""Just enough HTTP/1.1 for the Engine API: one request per connection, framed responses
(Content-Length, chunked, or until close) and the ``101 UPGRADED`` hijack.

Why not ``http.client``: importing it pulls in ``email``, ``ssl`` and ``urllib`` (29 ms of
the 51 ms it costs here under ``python3 -X importtime -I -S``), which would be most of the
CLI's own start-up time. The daemon speaks to us over a local socket; we need none of that.
"""

from __future__ import annotations

import socket

from sampan.client.errors import ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

_READ_SIZE = 65536
_MAX_LINE = 65536


class SocketReader:
    """A buffered reader over a connected socket (lines for headers, bytes for bodies)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(_READ_SIZE)
        if not data:
            return False
        self.buffer += data
        return True

    def read_line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            if len(self.buffer) > _MAX_LINE:
                raise ProtocolError("header line too long")
            if not self._fill():
                line, self.buffer = self.buffer, b""
                return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ProtocolError("connection closed in the middle of a response")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_some(self) -> bytes:
        """The buffered bytes, or one ``recv`` worth; ``b""`` at end of stream."""
        if not self.buffer and not self._fill():
            return b""
        data, self.buffer = self.buffer, b""
        return data


class Response:
    """Status, lower-cased headers, and the body read on demand."""

    def __init__(self, reader: SocketReader, status: int, reason: str,
                 headers: dict[str, str], head_request: bool = False) -> None:
        self.reader = reader
        self.status = status
        self.reason = reason
        self.headers = headers
        self._head = head_request

    def chunks(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives (streams: logs, events, stats, pulls)."""
        if self._head or self.status in (204, 304) or 100 <= self.status < 200:
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.reader.read_line()
                if not size_line:
                    raise ProtocolError("connection closed in the middle of a chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.reader.read_line() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.reader.read_exact(size)
                self.reader.read_exact(2)
        elif "content-length" in self.headers:
            remaining = int(self.headers["content-length"])
            while remaining > 0:
                data = self.reader.read_some()
                if not data:
                    raise ProtocolError("connection closed in the middle of a response")
                if len(data) > remaining:
                    self.reader.buffer = data[remaining:] + self.reader.buffer
                    data = data[:remaining]
                remaining -= len(data)
                yield data
        else:
            while data := self.reader.read_some():
                yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        """The body split at newlines (JSON message streams); a last partial line too."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def close(self) -> None:
        self.reader.sock.close()


def send_request(sock: socket.socket, method: str, target: str, headers: dict[str, str],
                 body: bytes | None) -> None:
    lines = [f"{method} {target} HTTP/1.1", "Host: api"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None and "Transfer-Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock.sendall(head + body if body is not None and len(body) < 65536 else head)
    if body is not None and len(body) >= 65536:
        sock.sendall(body)


def send_chunk(sock: socket.socket, data: bytes) -> None:
    """One piece of a ``Transfer-Encoding: chunked`` request body (``b""`` ends it)."""
    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))


def read_response(sock: socket.socket, head_request: bool = False) -> Response:
    reader = SocketReader(sock)
    status_line = reader.read_line()
    while status_line in (b"\r\n", b"\n"):
        status_line = reader.read_line()
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"malformed status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        line = reader.read_line()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    reason = parts[2] if len(parts) > 2 else ""
    return Response(reader, int(parts[1]), reason, headers, head_request)
