"""Docker's multiplexed stream framing (``application/vnd.docker.multiplexed-stream``).

Each frame: ``[stream, 0, 0, 0, size (4 bytes, big endian)]`` then ``size`` bytes; stream 0
is stdin, 1 stdout, 2 stderr, 3 the daemon's system error for this stream.
"""

from __future__ import annotations

from collections.abc import Iterator

STDOUT = 1
STDERR = 2
SYSTEM_ERROR = 3

_HEADER = 8


class FrameSplitter:
    """Incremental demultiplexer: ``feed(bytes)`` yields ``(stream, data)`` frames."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._pending += data
        while len(self._pending) >= _HEADER:
            size = int.from_bytes(self._pending[4:8], "big")
            if len(self._pending) < _HEADER + size:
                return
            stream = self._pending[0]
            payload = self._pending[_HEADER : _HEADER + size]
            self._pending = self._pending[_HEADER + size :]
            yield stream, payload

    @property
    def leftover(self) -> bytes:
        return self._pending
