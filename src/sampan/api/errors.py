"""The one place where engine errors become HTTP status codes (containerd's ``errdefs`` habit).

The client side (``sampan.client``) maps the codes back; keep the two tables in step.
"""

from __future__ import annotations

import json

from sampan import errdefs

_STATUS: list[tuple[type[BaseException], int]] = [
    (errdefs.NotModified, 304),
    (errdefs.InvalidParameter, 400),
    (errdefs.Forbidden, 403),
    (errdefs.NotFound, 404),
    (errdefs.Conflict, 409),
    (errdefs.NotImplementedFeature, 501),
    (errdefs.Unavailable, 503),
    (errdefs.System, 500),
]

REASONS = {
    101: "UPGRADED",
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def status_for(exc: BaseException) -> int:
    """Docker's status code for an error: errdefs kinds by class, anything else 500."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def message_for(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text or type(exc).__name__


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"
