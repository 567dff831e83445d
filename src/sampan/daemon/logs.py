"""Reading a container's json-file log (written by the supervisor) for ``docker logs``.

Files: ``<id>-json.log`` (current) and ``<id>-json.log.1``, ``.2``... (older, higher is older).
Each line is ``{"log": "<text>", "stream": "stdout"|"stderr", "time": "<RFC3339Nano>"}``; a
record whose ``log`` lacks the final ``\\n`` is a partial line (split at 16 KiB).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO

from sampan.daemon.timefmt import parse_rfc3339, rfc3339_nano_fixed

STDOUT = 1
STDERR = 2
_STREAMS = {"stdout": STDOUT, "stderr": STDERR}
FOLLOW_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class LogRecord:
    stream: int
    data: bytes
    time_ns: int


@dataclass(frozen=True)
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    since_ns: int = 0
    until_ns: int = 0
    timestamps: bool = False
    tail: int | None = None  # None: all

    def wants(self, record: LogRecord) -> bool:
        if record.stream == STDOUT and not self.stdout:
            return False
        if record.stream == STDERR and not self.stderr:
            return False
        return not (self.since_ns and record.time_ns < self.since_ns)

    def past_until(self, record: LogRecord) -> bool:
        return bool(self.until_ns) and record.time_ns > self.until_ns

    def entry(self, record: LogRecord) -> tuple[int, bytes]:
        if self.timestamps:
            return record.stream, rfc3339_nano_fixed(record.time_ns).encode() + b" " + record.data
        return record.stream, record.data


def parse_line(line: bytes) -> LogRecord | None:
    """One json-file line; ``None`` for a torn or foreign line (a crash mid-write)."""
    try:
        doc = json.loads(line)
        return LogRecord(_STREAMS.get(doc["stream"], STDOUT), doc["log"].encode(),
                         parse_rfc3339(doc["time"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def log_files(path: str) -> list[str]:
    """The rotated files then the current one, oldest first."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return [*reversed(rotated), path]


def _records(handle: IO[bytes]) -> Iterator[LogRecord]:
    for line in handle:
        if not line.endswith(b"\n"):
            handle.seek(-len(line), os.SEEK_CUR)  # incomplete: the writer is mid-line
            return
        record = parse_line(line)
        if record is not None:
            yield record


def read_existing(path: str, query: LogQuery) -> tuple[list[LogRecord], tuple[int, int]]:
    """What the files hold now, filtered and tailed, and where the current file was read to
    (inode, offset) so that following starts exactly there (blocking: run it in a thread)."""
    kept: deque[LogRecord] = deque(maxlen=query.tail) if query.tail is not None else deque()
    position = (-1, 0)
    for name in log_files(path):
        try:
            with open(name, "rb") as handle:
                for record in _records(handle):
                    if query.wants(record):
                        kept.append(record)
                if name == path:
                    position = (os.fstat(handle.fileno()).st_ino, handle.tell())
        except FileNotFoundError:
            continue
    if query.tail == 0:
        kept.clear()
    return [r for r in kept if not query.past_until(r)], position


async def follow_log(path: str, query: LogQuery, still_running: Callable[[], bool],
                     position: tuple[int, int] = (-1, 0)) -> AsyncIterator[LogRecord]:
    """Records appended to the current file (across rotations) after ``position`` (from
    :func:`read_existing`) until the container is no longer running and the file is drained."""
    handle: IO[bytes] | None = None
    inode = -1
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - closed in finally
                except FileNotFoundError:
                    if not still_running():
                        return
                    await asyncio.sleep(FOLLOW_POLL_SECONDS)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
                if inode == position[0]:
                    handle.seek(position[1])
            running = still_running()  # read before draining: no line is lost at exit
            got = False
            for record in _records(handle):
                got = True
                if query.past_until(record):
                    return
                if query.wants(record):
                    yield record
            if got:
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = True
            if rotated:
                handle.close()
                handle = None
                continue
            if not running:
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        if handle is not None:
            handle.close()
