"""An interactive session on a hijacked stream: raw terminal, resizes, signal proxying.

Used by ``run`` (without ``-d``), ``start -a``, ``attach`` and ``exec``. The terminal is
put in raw mode only when the process has a tty and our stdin is a terminal, and it is
restored on every way out (``RawTerminal``). SIGWINCH becomes a resize request; with
``proxy_signals`` the other catchable signals are sent to the container with the kill API.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

from sampan.cli.context import Context
from sampan.cli.streams import pump
from sampan.cli.terminal import RawTerminal, is_terminal, window_size
from sampan.client.errors import ClientError

_NOT_PROXIED = {signal.SIGCHLD, signal.SIGPIPE, signal.SIGWINCH, signal.SIGURG,
                signal.SIGKILL, signal.SIGSTOP, signal.SIGTTIN, signal.SIGTTOU,
                signal.SIGTSTP, signal.SIGCONT}


def resize(ctx: Context, resize_path: str) -> None:
    size = window_size(sys.stdout.fileno()) or window_size(sys.stdin.fileno())
    if size is None:
        return
    rows, columns = size
    with contextlib.suppress(ClientError):
        ctx.client.post(resize_path, {"h": rows, "w": columns})


def proxy_signals(ctx: Context, container: str) -> Callable[[], None]:
    """Forward catchable signals to ``container``; returns the undo function."""
    from sampan.client.api import quote

    previous: dict[int, object] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        with contextlib.suppress(ClientError):
            ctx.client.post(f"/containers/{quote(container)}/kill", {"signal": str(signum)})

    for signum in signal.valid_signals():
        if signum in _NOT_PROXIED or signum >= signal.SIGRTMIN:
            continue
        try:
            previous[signum] = signal.signal(signum, forward)
        except (OSError, ValueError):
            continue

    def undo() -> None:
        for signum, handler in previous.items():
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, handler)  # type: ignore[arg-type]

    return undo


def interact(ctx: Context, sock: socket.socket, leftover: bytes, *, tty: bool,
             attach_stdin: bool, detach_keys: bytes | None, resize_path: str | None,
             after_setup: Callable[[], None] | None = None) -> str:
    """Pumps the stream until it ends or the user detaches; returns ``pump``'s result.
    ``after_setup`` runs once the terminal is ready (``run`` starts the container there)."""
    stdin_fd = sys.stdin.fileno() if attach_stdin else None
    raw = tty and attach_stdin and is_terminal(sys.stdin.fileno())
    previous_winch = None
    sys.stdout.flush()
    try:
        with RawTerminal(sys.stdin.fileno()) if raw else contextlib.nullcontext():
            if after_setup is not None:
                after_setup()
            if tty and resize_path is not None and is_terminal(sys.stdout.fileno()):
                resize(ctx, resize_path)
                path = resize_path

                def on_winch(signum: int, frame: FrameType | None) -> None:
                    del signum, frame
                    resize(ctx, path)

                previous_winch = signal.signal(signal.SIGWINCH, on_winch)
            return pump(sock, leftover, tty=tty, stdin_fd=stdin_fd,
                        stdout_fd=sys.stdout.fileno(), stderr_fd=sys.stderr.fileno(),
                        detach_keys=detach_keys if attach_stdin else None)
    finally:
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)
        sock.close()
