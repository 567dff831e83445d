"""The sampand <-> sampan-supervisor protocol: JSON lines over a unix stream socket.

One request per line, replies carry the request's number; events arrive on the connections
that asked for them::

    sampand (SupervisorClient)                     sampan-supervisor
      {"op": "create", "req": 1, "id": ..} ───▶     runs <runtime> create
                                         ◀───     {"req": 1, "ok": true, "pid": 4242}
      {"op": "subscribe", "req": 2}       ───▶
                                         ◀───     {"req": 2, "ok": true}
      {"op": "wait", "req": 3, "id": ..}  ───▶     (held until the process has exited)
                                         ◀───     {"event": "exit", "id": .., "exit_code": 0, ..}
                                         ◀───     {"req": 3, "ok": true, "exit_code": 0, ..}
      {"op": "start", "req": 4, "id": "x"}───▶
                                         ◀───     {"req": 4, "ok": false, "kind": "NotFound",
                                                   "message": "no such task: x"}

``attach`` turns its connection into a binary stream after the ``ok`` reply::

      {"op": "attach", "req": 1, "id": .., "stdin": true, "stdout": true, "stderr": true}
                                         ◀───     {"req": 1, "ok": true}\\n
      raw stdin bytes                     ───▶     written to the process's stdin
      shutdown(SHUT_WR)                   ───▶     the process's stdin is closed (unless the
                                                   attach said "keep_stdin": true)
                                         ◀───     frames: stream (1 byte) + length (4, BE) + data
                                         ◀───     EOF when the process's output has ended

This module is shared by both sides: it holds only data and pure encoders (no I/O).
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

from sampan import errdefs

# Ops a client may send (one verb each, see docs/daemon-architecture.md).
OPS: Final = frozenset({
    "create", "start", "exec", "kill", "resize", "delete", "pause", "resume", "update",
    "state", "pids", "wait", "list", "subscribe", "attach", "ping",
})

# Attach frames: which of the process's streams the data came from (a tty task: always 1).
STDOUT: Final = 1
STDERR: Final = 2
FRAME_HEADER: Final = struct.Struct(">BI")

# Event kinds on subscribed connections.
EVENT_EXIT: Final = "exit"
EVENT_OOM: Final = "oom"

MAX_LINE: Final = 8 << 20  # a request line longer than this closes the connection

_KINDS: Final[dict[str, type[errdefs.SampanError]]] = {
    "NotFound": errdefs.NotFound,
    "Conflict": errdefs.Conflict,
    "InvalidParameter": errdefs.InvalidParameter,
    "Unavailable": errdefs.Unavailable,
    "Forbidden": errdefs.Forbidden,
    "NotImplementedFeature": errdefs.NotImplementedFeature,
    "NotModified": errdefs.NotModified,
    "System": errdefs.System,
}


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; a malformed line is an ``InvalidParameter``."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise errdefs.InvalidParameter(f"malformed protocol line: {error}") from None
    if not isinstance(message, dict):
        raise errdefs.InvalidParameter("malformed protocol line: not an object")
    return message


def ok_reply(req: Any, **fields: Any) -> dict[str, Any]:
    return {"req": req, "ok": True, **fields}


def error_reply(req: Any, error: BaseException) -> dict[str, Any]:
    kind = next((name for name, cls in _KINDS.items() if type(error) is cls), "System")
    return {"req": req, "ok": False, "kind": kind, "message": str(error)}


def error_from_reply(reply: dict[str, Any]) -> errdefs.SampanError:
    """The ``errdefs`` exception a failed reply stands for."""
    cls = _KINDS.get(str(reply.get("kind")), errdefs.System)
    return cls(str(reply.get("message") or "supervisor error"))


def frame(stream: int, data: bytes) -> bytes:
    """An attach frame: stream number, big-endian length, data."""
    return FRAME_HEADER.pack(stream, len(data)) + data


def exit_event(task_id: str, exec_id: str | None, pid: int, exit_code: int, exited_at: str,
               oom_killed: bool) -> dict[str, Any]:
    return {"event": EVENT_EXIT, "id": task_id, "exec_id": exec_id, "pid": pid,
            "exit_code": exit_code, "exited_at": exited_at, "oom_killed": oom_killed}
