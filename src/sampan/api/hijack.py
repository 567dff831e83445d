"""A hijacked connection: the client's raw socket joined to a process's ``AttachStream``.

```
client ──stdin bytes──▶ detach-key matcher ──▶ stream.write_stdin
client ──SHUT_WR──────▶ stream.close_stdin   (output keeps flowing: ``echo x | docker run -i``)
client ◀─frames/raw──── stream.read() until None, then the server closes the socket
```
Detach keys, or the output's end, or the client's disappearance end the session; the
stream's ``close()`` is called exactly once in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sampan.api.framing import DetachKeyMatcher, stdcopy_frame
from sampan.api.types import AttachStream

log = logging.getLogger("sampan.api")

_READ_SIZE = 64 * 1024


async def run_hijack(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stream: AttachStream,
    first_input: bytes,
    detach_keys: bytes | None,
    *,
    first_output_delay: float = 0.0,
) -> None:
    output = asyncio.ensure_future(_pump_output(writer, stream, first_output_delay))
    feeding = asyncio.ensure_future(_pump_input(reader, stream, first_input, detach_keys))
    try:
        pending: set[asyncio.Future[Any]] = {output, feeding}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if output in done:
                break
            if feeding in done and feeding.exception() is None and feeding.result():
                break  # detached
            # stdin ended (half-close): keep streaming output
    finally:
        for task in (output, feeding):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        with contextlib.suppress(Exception):
            await stream.close()
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _pump_output(
    writer: asyncio.StreamWriter, stream: AttachStream, first_output_delay: float
) -> None:
    tty = stream.tty
    if first_output_delay:
        await asyncio.sleep(first_output_delay)
    while True:
        entry = await stream.read()
        if entry is None:
            return
        kind, data = entry
        if not data:
            continue
        writer.write(data if tty else stdcopy_frame(kind, data))
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            return


async def _pump_input(
    reader: asyncio.StreamReader,
    stream: AttachStream,
    first_input: bytes,
    detach_keys: bytes | None,
) -> bool:
    """Copies client input to stdin. Returns True on detach, False when input ended."""
    matcher = DetachKeyMatcher(detach_keys) if detach_keys else None
    data = first_input
    while True:
        if data:
            if matcher is not None:
                data, detach = matcher.feed(data)
                if detach:
                    if data:
                        await stream.write_stdin(data)
                    return True
            if data:
                await stream.write_stdin(data)
        try:
            data = await reader.read(_READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            if matcher is not None:
                held = matcher.flush()
                if held:
                    await stream.write_stdin(held)
            await stream.close_stdin()
            return False
