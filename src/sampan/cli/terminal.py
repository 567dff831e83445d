"""The user's terminal: raw mode that is always undone, and its window size.

Raw mode (``cfmakeraw``, see termios(3)) hands every keystroke, ctrl-c included, to the
container's pty unchanged; the container's line discipline does the echoing and signals.
``RawTerminal`` restores the saved attributes on every way out of its block, including
SIGTERM and SIGHUP (turned into ``SystemExit`` while it is active).
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType, TracebackType
from typing import Any


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns), or None when ``fd`` is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)


class RawTerminal:
    """``with RawTerminal(fd):`` puts ``fd`` in raw mode; no-op when it is not a terminal."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None
        self._previous_handlers: dict[int, object] = {}

    def __enter__(self) -> RawTerminal:
        if not is_terminal(self.fd):
            return self
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[signum] = signal.signal(signum, _exit_on_signal)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def restore(self) -> None:
        if self._saved is None:
            return
        import termios

        with contextlib.suppress(OSError, termios.error):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self._saved = None
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.restore()
