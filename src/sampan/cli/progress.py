"""Docker's JSON message streams (pull, push, load, import) shown to the user.

On a terminal: one line per layer id, rewritten in place with ANSI cursor moves, with a
progress bar drawn from ``progressDetail``. Otherwise: plain lines, one per message, no
bars (what a log file or CI wants).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from sampan.cli.errors import StatusError
from sampan.cli.units import human_size


def progress_bar(current: int, total: int, width: int = 50) -> str:
    """``[=====>      ]  1.2MB/3.4MB`` (Docker's JSONProgress rendering)."""
    if total <= 0:
        return human_size(current)
    filled = min(width, int(width * current / total))
    arrow = ">" if filled < width else ""
    bar = "=" * filled + arrow + " " * (width - filled - len(arrow))
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def _line(message: dict[str, Any], tty: bool) -> str:
    parts = []
    if message.get("id"):
        parts.append(f"{message['id']}: ")
    parts.append(str(message.get("status", "")))
    detail = message.get("progressDetail") or {}
    if tty and detail.get("current") is not None:
        parts.append(" " + progress_bar(int(detail.get("current", 0)),
                                       int(detail.get("total", 0) or 0)))
    elif tty and message.get("progress"):
        parts.append(" " + str(message["progress"]))
    return "".join(parts)


def display(messages: Iterable[dict[str, Any]], out: TextIO | None = None,
            tty: bool | None = None) -> list[dict[str, Any]]:
    """Shows the stream; raises ``StatusError(1, ...)`` on an ``error`` message.
    Returns the messages that carried an ``aux`` payload (ids of built/loaded images)."""
    out = out or sys.stdout
    if tty is None:
        tty = out.isatty()
    auxiliary: list[dict[str, Any]] = []
    rows: dict[str, int] = {}
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            text = detail.get("message") or message.get("error")
            raise StatusError(1, str(text))
        if "aux" in message:
            auxiliary.append(message["aux"])
            continue
        if "stream" in message:
            out.write(str(message["stream"]))
            out.flush()
            continue
        identifier = message.get("id")
        has_progress = bool(message.get("progressDetail") or message.get("progress"))
        if not tty:
            if has_progress:
                continue  # plain output: no per-chunk progress lines
            out.write(_line(message, tty) + "\n")
            continue
        text = _line(message, tty)
        if identifier and identifier in rows:
            up = len(rows) - rows[identifier]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        else:
            if identifier:
                rows[identifier] = len(rows)
            else:
                rows.clear()
            out.write(text + "\n")
        out.flush()
    return auxiliary
