"""A container process's stdio as the supervisor holds it: output pumped into the json-file
log and to every attached client, stdin fed from attached clients.

Non-tty: a pipe per stream (stdout, stderr) plus a stdin pipe when the process keeps stdin
open. Tty: the pty master, which carries output (all of it reported as stdout) and input.
Backpressure: while an attached client has more than ``HIGH_WATER`` bytes unsent, the
process's output is not read (the kernel pipe fills and the process blocks, as with Docker);
a client that goes away stops counting at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios
from collections.abc import Callable

from sampan.supervisor.protocol import STDERR, STDOUT, frame
from sampan.supervisor.server.connection import Connection
from sampan.supervisor.server.jsonlog import JsonLog
from sampan.supervisor.server.reactor import Reactor

READ_SIZE = 65536
HIGH_WATER = 1 << 20
STDIN_LIMIT = 1 << 20


def set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


class Attachment:
    __slots__ = ("conn", "keep_stdin", "stderr", "stdin", "stdout")

    def __init__(self, conn: Connection, stdin: bool, stdout: bool, stderr: bool,
                 keep_stdin: bool = False) -> None:
        self.conn = conn
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.keep_stdin = keep_stdin  # EOF from this client leaves the stdin open


class ProcessIO:
    def __init__(self, reactor: Reactor, outputs: list[tuple[int, int]], stdin_fd: int | None,
                 log: JsonLog | None, tty_master: int | None = None) -> None:
        self.reactor = reactor
        self.outputs = dict(outputs)  # fd -> stream number
        self.stdin_fd = stdin_fd
        self.log = log
        self.tty_master = tty_master
        self.attachments: list[Attachment] = []
        self.ended = not self.outputs
        self.on_end: Callable[[], None] | None = None
        self._stdin_buffer = bytearray()
        self._stdin_close_pending = False
        self._reading = False
        self._discard = False
        for fd in self.outputs:
            set_nonblocking(fd)
        if stdin_fd is not None and stdin_fd != tty_master:
            set_nonblocking(stdin_fd)

    # ---- output
    def start_reading(self, discard: bool = False) -> None:
        """Begin pumping output (``discard``: nobody will ever read it: a detached exec)."""
        self._discard = self._discard or discard
        if self._reading or self.ended:
            return
        self._reading = True
        for fd in self.outputs:
            self.reactor.set_reader(fd, self._reader(fd))

    def _pause_output(self) -> None:
        if self._reading:
            self._reading = False
            for fd in self.outputs:
                self.reactor.set_reader(fd, None)

    def _reader(self, fd: int) -> Callable[[], None]:
        return lambda: self._readable(fd)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            if error.errno != errno.EIO:  # EIO: every slave fd of the pty is closed
                raise
            data = b""
        if not data:
            self._output_closed(fd)
            return
        stream = self.outputs[fd]
        if self._discard:
            return
        if self.log is not None:
            self.log.write(stream, data)
        if self.attachments:
            message = frame(stream, data)
            congested = False
            for attachment in list(self.attachments):
                if attachment.stdout if stream == STDOUT else attachment.stderr:
                    attachment.conn.send(message)
                    congested = congested or len(attachment.conn.pending) > HIGH_WATER
            if congested:
                self._pause_output()

    def _output_closed(self, fd: int) -> None:
        self.reactor.forget(fd)
        del self.outputs[fd]
        if fd == self.tty_master:
            self._drop_stdin()
            self.tty_master = None
        os.close(fd)
        if not self.outputs:
            self._end()

    def _end(self) -> None:
        self.ended = True
        self._reading = False
        if self.log is not None:
            self.log.flush()
        # a copy: closing a connection detaches it (removes it from self.attachments)
        attachments, self.attachments = self.attachments, []
        for attachment in attachments:
            attachment.conn.close_when_flushed()
        if self.on_end is not None:
            self.on_end()

    def _attachment_drained(self) -> None:
        if self.ended or self._reading:
            return
        if all(len(a.conn.pending) <= HIGH_WATER for a in self.attachments):
            self.start_reading()

    # ---- attach
    def attach(self, conn: Connection, stdin: bool, stdout: bool, stderr: bool,
               keep_stdin: bool = False) -> None:
        """Serve ``conn`` as a stream: output frames out, stdin in (see protocol.py)."""
        if stdin and (self.stdin_fd is None):
            stdin = False
        attachment = Attachment(conn, stdin, stdout, stderr, keep_stdin)
        conn.switch_to_stream(lambda data: self._stdin_data(attachment, data),
                              lambda: self._stdin_eof(attachment))
        if self.ended:
            conn.close_when_flushed()
            return
        self.attachments.append(attachment)
        conn.on_drain = self._attachment_drained
        conn.on_close_callbacks.append(lambda _conn: self._detach(attachment))
        self.start_reading()

    def _detach(self, attachment: Attachment) -> None:
        if attachment in self.attachments:
            self.attachments.remove(attachment)
        self._attachment_drained()

    def _stdin_data(self, attachment: Attachment, data: bytes) -> None:
        if not attachment.stdin or self.stdin_fd is None:
            return  # input from a client not attached to stdin is dropped
        self._stdin_buffer += data
        self._flush_stdin()
        if len(self._stdin_buffer) > STDIN_LIMIT:
            for other in self.attachments:
                if other.stdin:
                    other.conn.pause_reading()

    def _stdin_eof(self, attachment: Attachment) -> None:
        """The client half-closed: close the process's stdin (not a tty's: that is output too)."""
        if attachment.stdin and not attachment.keep_stdin:
            self.close_stdin()
        if self.ended:
            attachment.conn.close_when_flushed()

    def close_stdin(self) -> None:
        if self.stdin_fd is None or self.stdin_fd == self.tty_master:
            return
        if self._stdin_buffer:
            self._stdin_close_pending = True
        else:
            self._drop_stdin()

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            self._stdin_buffer.clear()
            return
        while self._stdin_buffer:
            try:
                written = os.write(fd, self._stdin_buffer)
            except (BlockingIOError, InterruptedError):
                self.reactor.set_writer(fd, self._flush_stdin)
                return
            except OSError:  # EPIPE: the process closed its stdin; EIO: pty gone
                self._stdin_buffer.clear()
                self._drop_stdin()
                return
            del self._stdin_buffer[:written]
        self.reactor.set_writer(fd, None)
        for attachment in self.attachments:
            if attachment.stdin:
                attachment.conn.resume_reading()
        if self._stdin_close_pending:
            self._drop_stdin()

    def _drop_stdin(self) -> None:
        fd, self.stdin_fd = self.stdin_fd, None
        self._stdin_close_pending = False
        if fd is None:
            return
        if fd == self.tty_master:
            self.reactor.set_writer(fd, None)
            return
        self.reactor.forget(fd)
        os.close(fd)

    # ---- tty
    def resize(self, height: int, width: int) -> None:
        if self.tty_master is not None:
            fcntl.ioctl(self.tty_master, termios.TIOCSWINSZ,
                        struct.pack("HHHH", height, width, 0, 0))

    def close(self) -> None:
        """Forget the process (task deleted): flush the log, close every fd and client."""
        self._drop_stdin()
        for fd in list(self.outputs):
            self.reactor.forget(fd)
            os.close(fd)
        self.outputs.clear()
        if not self.ended:
            self._end()
        if self.log is not None:
            self.log.close()


__all__ = ["STDERR", "STDOUT", "Attachment", "ProcessIO"]
