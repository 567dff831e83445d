"""The request and response values handlers see, and query-string parsing with Docker's rules.

A handler is ``async def handler(request: Request) -> Response``; it never touches the socket.
The server (``server.py``) turns each ``Response`` kind into bytes on the wire.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sampan import errdefs
from sampan.api.types import JSON, AttachStream, Filters

MAX_JSON_BODY = 16 * 1024 * 1024
"""Largest JSON request body read into memory (create bodies are a few KiB)."""


@dataclass
class Request:
    """One parsed HTTP request.

    ``path`` is without the ``/v1.xx`` prefix; ``version`` is the API version the request
    speaks (the prefix, or the server's own version for unversioned paths).
    """

    method: str
    path: str
    version: tuple[int, int]
    query: dict[str, list[str]]
    headers: dict[str, str]
    params: dict[str, str]
    read_body: Callable[[], AsyncIterator[bytes]]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in (self.header("connection") or "").lower()

    def query_str(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def query_list(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def has(self, name: str) -> bool:
        return name in self.query

    def query_bool(self, name: str, default: bool = False) -> bool:
        """Docker's ``httputils.BoolValue``: absent -> default; "", 0, no, false, none ->
        false; anything else true."""
        if name not in self.query:
            return default
        return self.query_str(name).strip().lower() not in ("", "0", "no", "false", "none")

    def query_int(self, name: str, default: int | None = None) -> int | None:
        raw = self.query_str(name).strip()
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise errdefs.InvalidParameter(
                f"invalid value for {name}: {raw!r} is not an integer"
            ) from None

    def filters(self) -> Filters:
        return parse_filters(self.query_str("filters"))

    async def body_bytes(self, limit: int = MAX_JSON_BODY) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.read_body():
            size += len(chunk)
            if size > limit:
                raise errdefs.InvalidParameter(f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(self, *, required: bool = False) -> JSON | None:
        """The body as a JSON object; ``None`` for an empty body unless ``required``."""
        raw = await self.body_bytes()
        if not raw.strip():
            if required:
                raise errdefs.InvalidParameter("invalid JSON: request body is empty")
            return None
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errdefs.InvalidParameter(f"invalid JSON: {exc}") from None
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise errdefs.InvalidParameter(
                f"invalid JSON: expected an object, got {type(value).__name__}"
            )
        return value


def parse_filters(raw: str) -> Filters:
    """Both forms of Docker's ``filters``: ``{"k": {"v": true}}`` and ``{"k": ["v"]}``."""
    if raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid filter: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errdefs.InvalidParameter("invalid filter: expected a JSON object")
    result: Filters = {}
    for key, values in value.items():
        if isinstance(values, dict):
            result[key] = [v for v, on in values.items() if on is not False]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            result[key] = list(values)
        elif isinstance(values, str):
            result[key] = [values]
        else:
            raise errdefs.InvalidParameter(f"invalid filter: bad values for {key!r}")
    return result


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timestamp(raw: str, name: str, now: float | None = None) -> float | None:
    """Docker's ``timetypes.GetTimestamp`` forms: Unix seconds (``1700000000``,
    ``1700000000.5``), RFC 3339 (``2024-01-02T03:04:05Z``, dates) or a Go duration
    (``10m``, ``1h30m``) meaning that long before now. "" is None."""
    text = raw.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    else:
        if pos == len(text) and pos > 0:
            return (time.time() if now is None else now) - total
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid value for {name}: {raw!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()


# ----------------------------------------------------------------------------- responses


@dataclass
class JSONResponse:
    """A JSON body with Content-Length."""

    body: Any
    status: int = 200


@dataclass
class EmptyResponse:
    """No body: 204, 201, 304 and the like."""

    status: int = 204


@dataclass
class BytesResponse:
    """A small fixed body (``/_ping``'s ``OK``)."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StreamResponse:
    """A chunked body; the headers go out (and are flushed) before the first chunk is
    asked for, and every chunk is flushed as it comes. ``on_error`` turns an exception the
    iterator raises after the headers into a last chunk (None: end the stream)."""

    chunks: AsyncIterator[bytes]
    content_type: str | None = "application/json"
    status: int = 200
    on_error: Callable[[BaseException], bytes | None] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class HijackResponse:
    """Take over the connection for a live attach: ``101 UPGRADED`` (or a 200 for clients
    that did not ask to upgrade), then raw or stdcopy-framed bytes both ways."""

    stream: AttachStream
    detach_keys: bytes | None
    content_type: str
    extra_headers: bool = True
    """Whether the 101 carries the usual Api-Version/Ostype/Server headers (exec start
    does; the container attach 101 does not)."""


Response = JSONResponse | EmptyResponse | BytesResponse | StreamResponse | HijackResponse
Handler = Callable[[Request], Awaitable[Response]]


def json_line(value: Any) -> bytes:
    """One message of a JSON stream: compact JSON and a newline, as Go's json.Encoder."""
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def in_band_error(exc: BaseException) -> bytes:
    """A failure after the 200 of a JSON progress stream (the CLI exits 1 on it)."""
    message = str(exc) or type(exc).__name__
    return json_line({"errorDetail": {"message": message}, "error": message})


async def json_stream(items: AsyncIterator[JSON]) -> AsyncIterator[bytes]:
    """Encode each item as one JSON line."""
    try:
        async for item in items:
            yield json_line(item)
    finally:
        closer = getattr(items, "aclose", None)
        if closer is not None:
            await closer()
