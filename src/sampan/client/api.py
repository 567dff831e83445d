"""``APIClient``: one method per kind of exchange with the Engine API.

Every request opens its own connection (a unix socket connect is a few microseconds) and
asks for ``Connection: close``, so no connection state outlives a call. Error statuses are
raised as ``DaemonError`` carrying the daemon's ``message``; a socket nobody answers on is
``DaemonUnreachable``.
"""

from __future__ import annotations

import json
import socket

from sampan.client import http11
from sampan.client.errors import DaemonError, DaemonUnreachable, ProtocolError
from sampan.client.hosts import DaemonAddress

API_VERSION = "1.44"
USER_AGENT = "sampan-cli/0.1.0"

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# ``typing`` and ``collections.abc`` cost start-up time; annotations are not evaluated
# (``from __future__ import annotations``), so they are imported for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any, BinaryIO

    Params = Mapping[str, Any] | None


def quote(text: str, safe: str = "") -> str:
    """Percent-encode (RFC 3986 unreserved characters and ``safe`` stay as they are)."""
    keep = _UNRESERVED | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def encode_query(params: Params) -> str:
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "1" if item else "0"
            pairs.append(f"{quote(key)}={quote(str(item))}")
    return "?" + "&".join(pairs) if pairs else ""


def encode_filters(filters: Iterable[str] | Mapping[str, list[str]]) -> str | None:
    """``["name=x", "status=running"]`` -> Docker's JSON ``{"name": {"x": true}, ...}``."""
    table: dict[str, dict[str, bool]] = {}
    if isinstance(filters, dict):
        for key, values in filters.items():
            for value in values:
                table.setdefault(key, {})[value] = True
    else:
        for item in filters:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"bad format of filter (expected name=value): {item}")
            table.setdefault(key.strip(), {})[value] = True
    return json.dumps(table) if table else None


def error_message(body: bytes, status: int) -> str:
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
            return str(decoded["message"])
    except ValueError:
        pass
    text = body.decode(errors="replace").strip()
    return text or f"status {status}"


class APIClient:
    """Talks to one daemon address with one API version (``/v1.44/...``)."""

    def __init__(self, address: DaemonAddress, version: str = API_VERSION,
                 timeout: float | None = None) -> None:
        self.address = address
        self.version = version
        self.timeout = timeout

    # -- connections ------------------------------------------------------------------------

    def connect(self) -> socket.socket:
        try:
            if self.address.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self.address.address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            return socket.create_connection(self.address.tcp_endpoint(), timeout=self.timeout)
        except FileNotFoundError as error:
            raise DaemonUnreachable(self.address.url, "no such socket") from error
        except ConnectionRefusedError as error:
            raise DaemonUnreachable(self.address.url, "connection refused") from error
        except PermissionError as error:
            raise DaemonUnreachable(self.address.url, "permission denied") from error
        except OSError as error:
            raise DaemonUnreachable(self.address.url, error.strerror or str(error)) from error

    def _target(self, path: str, params: Params, versioned: bool = True) -> str:
        prefix = f"/v{self.version}" if versioned and self.version else ""
        return prefix + path + encode_query(params)

    # -- plain requests -----------------------------------------------------------------------

    def request(self, method: str, path: str, params: Params = None, *, body: Any = None,
                data: bytes | None = None, headers: Mapping[str, str] | None = None,
                versioned: bool = True) -> http11.Response:
        """Sends one request and returns the response with its body unread. Raises
        ``DaemonError`` for statuses >= 400 (after reading the error body)."""
        all_headers = {"User-Agent": USER_AGENT, "Connection": "close"}
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        if data is None and method in ("POST", "PUT"):
            data = b""
        sock = self.connect()
        try:
            http11.send_request(sock, method, self._target(path, params, versioned),
                                all_headers, data)
            response = http11.read_response(sock, head_request=method == "HEAD")
        except (ConnectionError, ProtocolError) as error:
            sock.close()
            raise DaemonUnreachable(self.address.url, f"connection lost: {error}") from error
        except BaseException:
            sock.close()
            raise
        return self._checked(response)

    def _checked(self, response: http11.Response) -> http11.Response:
        if response.status >= 400:
            try:
                body = response.read()
            finally:
                response.close()
            raise DaemonError(response.status, error_message(body, response.status))
        return response

    def call(self, method: str, path: str, params: Params = None, *, body: Any = None,
             data: bytes | None = None, headers: Mapping[str, str] | None = None,
             versioned: bool = True) -> Any:
        """A request whose whole answer is read: decoded JSON, or ``None`` when empty."""
        response = self.request(method, path, params, body=body, data=data, headers=headers,
                                versioned=versioned)
        try:
            raw = response.read()
        finally:
            response.close()
        if not raw.strip():
            return None
        if "json" not in response.headers.get("content-type", "json"):
            return raw.decode(errors="replace")
        return json.loads(raw)

    def get(self, path: str, params: Params = None) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str, params: Params = None, body: Any = None) -> Any:
        return self.call("POST", path, params, body=body)

    def delete(self, path: str, params: Params = None) -> Any:
        return self.call("DELETE", path, params)

    def json_stream(self, method: str, path: str, params: Params = None, *, body: Any = None,
                    data: bytes | None = None,
                    headers: Mapping[str, str] | None = None) -> Iterator[Any]:
        """A streamed body of JSON documents, one per line (events, stats, pull progress)."""
        response = self.request(method, path, params, body=body, data=data, headers=headers)
        try:
            decoder = json.JSONDecoder()
            for line in response.lines():
                text = line.decode(errors="replace").strip()
                while text:
                    value, end = decoder.raw_decode(text)
                    yield value
                    text = text[end:].lstrip()
        finally:
            response.close()

    def upload(self, method: str, path: str, source: BinaryIO, params: Params = None,
               headers: Mapping[str, str] | None = None) -> http11.Response:
        """Streams ``source`` as a chunked request body (load, import, build contexts)."""
        all_headers = {"User-Agent": USER_AGENT, "Connection": "close",
                       "Transfer-Encoding": "chunked",
                       "Content-Type": "application/x-tar"}
        if headers:
            all_headers.update(headers)
        sock = self.connect()
        try:
            http11.send_request(sock, method, self._target(path, params), all_headers, None)
            while data := source.read(1 << 20):
                http11.send_chunk(sock, data)
            http11.send_chunk(sock, b"")
            response = http11.read_response(sock)
        except (ConnectionError, ProtocolError) as error:
            sock.close()
            raise DaemonUnreachable(self.address.url, f"connection lost: {error}") from error
        except BaseException:
            sock.close()
            raise
        return self._checked(response)

    # -- hijacked streams ---------------------------------------------------------------------

    def hijack(self, path: str, params: Params = None,
               body: Any = None) -> tuple[socket.socket, bytes]:
        """``POST`` with ``Upgrade: tcp``; on ``101`` (or a plain 200 from older servers)
        returns the raw socket and any bytes already read past the response head."""
        headers = {"User-Agent": USER_AGENT, "Connection": "Upgrade", "Upgrade": "tcp"}
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        sock = self.connect()
        try:
            http11.send_request(sock, "POST", self._target(path, params), headers, data)
            response = http11.read_response(sock)
        except (ConnectionError, ProtocolError) as error:
            sock.close()
            raise DaemonUnreachable(self.address.url, f"connection lost: {error}") from error
        except BaseException:
            sock.close()
            raise
        self._checked(response)
        return sock, response.reader.buffer
