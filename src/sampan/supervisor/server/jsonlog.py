"""Docker's ``json-file`` log: one JSON object per line, size-capped with rotation.

Each line is ``{"log": "<text>", "stream": "stdout"|"stderr", "time": "<RFC3339Nano>"}``.
Output is split at newlines (the newline stays in ``log``); a partial line is held back until
its newline arrives, or written as is when it grows past 16 KiB or the stream ends (Docker's
``partial`` behaviour, without the metadata). Rotation, as Docker's: when the next write would
pass ``max_size``, ``<log>.<n-1>`` becomes ``<log>.<n>`` ... ``<log>`` becomes ``<log>.1`` and a
new ``<log>`` starts; ``max_files`` counts the live file too, so 1 means truncate in place.
"""

from __future__ import annotations

import json
import os
import time

PARTIAL_LIMIT = 16 * 1024
STREAM_NAMES = {1: "stdout", 2: "stderr"}


def rfc3339_nano(ns: int) -> str:
    """``2024-05-01T10:00:00.123456789Z`` (UTC, nine fraction digits)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class JsonLog:
    """The log of one container. Writes go straight to the file (``O_APPEND``, no buffer)."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max(0, max_size)
        self.max_files = max(1, max_files)
        self._pending: dict[int, bytes] = {}
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: int, data: bytes) -> None:
        """Log a chunk of a stream's output (complete lines now, the rest when it completes)."""
        buffered = self._pending.pop(stream, b"") + data
        lines = buffered.split(b"\n")
        rest = lines.pop()
        records = [line + b"\n" for line in lines]
        if len(rest) > PARTIAL_LIMIT:
            records.append(rest)
        elif rest:
            self._pending[stream] = rest
        if records:
            self._append(stream, records)

    def flush(self) -> None:
        """Write the partial lines held back (the stream ended)."""
        pending, self._pending = self._pending, {}
        for stream, rest in pending.items():
            self._append(stream, [rest])

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1

    def _append(self, stream: int, records: list[bytes]) -> None:
        if self._fd < 0:
            return
        now = rfc3339_nano(time.time_ns())
        name = STREAM_NAMES.get(stream, "stdout")
        batch = bytearray()
        for record in records:
            line = json.dumps({"log": record.decode("utf-8", "replace"), "stream": name,
                               "time": now}, ensure_ascii=False).encode() + b"\n"
            if self.max_size and self._size + len(batch) + len(line) > self.max_size and \
                    self._size + len(batch) > 0:
                self._write(batch)
                batch = bytearray()
                self._rotate()
            batch += line
        self._write(batch)

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files == 1:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_TRUNC | os.O_CLOEXEC)
        else:
            for index in range(self.max_files - 1, 1, -1):
                older = f"{self.path}.{index - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index}")
            os.replace(self.path, f"{self.path}.1")
            self._fd = self._open()
        self._size = 0
