"""Docker's JSON progress messages (``jsonmessage.JSONMessage``), as the CLI displays them.

``{"status": "Downloading", "progressDetail": {"current": 36445, "total": 1068875},
"progress": "[=>   ...   ]  36.45kB/1.069MB", "id": "a7c483e18c07"}``: the ``progress`` text
is what older clients print; the docker CLI redraws from ``progressDetail``. Sizes are
decimal with four significant digits (go-units ``HumanSize``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
Emit = Callable[[Message], None]

UPDATE_EVERY = 512 * 1024  # bytes between two progress messages of one layer


def human_size(size: float) -> str:
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.4g}{units[index]}"


def progress_bar(current: int, total: int) -> str:
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * filled + ">" + " " * (50 - filled) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, short_id: str | None = None) -> Message:
    message: Message = {"status": text}
    if short_id is not None:
        message["progressDetail"] = {}
        message["id"] = short_id
    return message


def progress(text: str, short_id: str, current: int, total: int) -> Message:
    detail: dict[str, int] = {"current": current}
    if total > 0:
        detail["total"] = total
    return {
        "status": text,
        "progressDetail": detail,
        "progress": progress_bar(current, total),
        "id": short_id,
    }


def short(digest: str) -> str:
    return digest.partition(":")[2][:12]


class Meter:
    """Counts bytes of one layer and emits a progress message every ``UPDATE_EVERY`` bytes
    (and at the end). Safe to call from a worker thread when ``emit`` is."""

    def __init__(self, emit: Emit, text: str, short_id: str, total: int) -> None:
        self._emit = emit
        self._text = text
        self._id = short_id
        self.total = total
        self.current = 0
        self._last = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.current += count
            if self.current - self._last < UPDATE_EVERY:
                return
            self._last = self.current
            current = self.current
        self._emit(progress(self._text, self._id, current, self.total))

    def finish(self) -> None:
        with self._lock:
            if self._last == self.current:
                return
            self._last = self.current
            current = self.current
        self._emit(progress(self._text, self._id, current, self.total))
