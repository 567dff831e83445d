"""One client connection: JSON lines until it attaches, then a raw byte stream.

Writes never block the loop: what the socket does not take is kept in ``pending`` and sent
when the socket is writable again. Callers look at ``pending`` to apply backpressure.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from sampan.supervisor.protocol import MAX_LINE
from sampan.supervisor.server.reactor import Reactor

READ_SIZE = 65536


class Connection:
    def __init__(self, reactor: Reactor, sock: socket.socket,
                 on_line: Callable[[Connection, bytes], None],
                 on_close: Callable[[Connection], None]) -> None:
        self.reactor = reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.on_line = on_line
        self.on_close_callbacks = [on_close]
        self.pending = bytearray()
        self.closed = False
        self.subscribed = False
        # attach mode: raw bytes in go to on_data, EOF to on_eof
        self.on_data: Callable[[bytes], None] | None = None
        self.on_eof: Callable[[], None] | None = None
        self.on_drain: Callable[[], None] | None = None
        self._buffer = bytearray()
        self._close_when_flushed = False
        self._reading = True
        sock.setblocking(False)
        reactor.set_reader(self.fd, self._readable)

    # ---- input
    def pause_reading(self) -> None:
        if self._reading and not self.closed:
            self._reading = False
            self.reactor.set_reader(self.fd, None)

    def resume_reading(self) -> None:
        if not self._reading and not self.closed:
            self._reading = True
            self.reactor.set_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.reactor.set_reader(self.fd, None)
            self._reading = False
            if self.on_eof is not None:
                self.on_eof()
            else:
                self.close()
            return
        if self.on_data is not None:
            self.on_data(data)
            return
        self._buffer += data
        while not self.closed and self.on_data is None:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self.close()
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.strip():
                self.on_line(self, line)
        if self.on_data is not None and self._buffer:
            rest, self._buffer = bytes(self._buffer), bytearray()
            self.on_data(rest)

    def switch_to_stream(self, on_data: Callable[[bytes], None],
                         on_eof: Callable[[], None]) -> None:
        """From now on bytes read are raw stream data (the rest of the buffer included)."""
        self.on_data = on_data
        self.on_eof = on_eof

    # ---- output
    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.pending:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            data = data[sent:]
            if not data:
                return
            self.reactor.set_writer(self.fd, self._writable)
        self.pending += data

    def close_when_flushed(self) -> None:
        if not self.pending:
            self.close()
        else:
            self._close_when_flushed = True

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.pending[:sent]
        if self.pending:
            return
        self.reactor.set_writer(self.fd, None)
        if self._close_when_flushed:
            self.close()
            return
        if self.on_drain is not None:
            self.on_drain()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.forget(self.fd)
        self.sock.close()
        self.pending.clear()
        callbacks, self.on_close_callbacks = self.on_close_callbacks, []
        for callback in callbacks:
            callback(self)
