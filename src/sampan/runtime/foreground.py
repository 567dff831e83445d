"""Stay attached to a container process: forward signals, proxy its tty, return its status.

Used by ``run`` and ``exec`` without ``--detach``. The runtime is a child subreaper, so the
process (forked by a short-lived intermediate) is re-parented to it and can be waited for.
"""

import os
import select
import signal
import sys
from types import FrameType

from sampan.kernel.process import set_child_subreaper

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGCONT, signal.SIGTSTP, signal.SIGWINCH)


def become_subreaper() -> None:
    set_child_subreaper()


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_for(pid: int, pty_master: int | None) -> int:
    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGWINCH and pty_master is not None:
            _copy_window_size(pty_master)
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    if pty_master is not None:
        _proxy_tty(pty_master)
    while True:
        reaped, status = os.waitpid(-1, 0)
        if reaped == pid:
            return exit_code(status)


def _copy_window_size(master: int) -> None:
    from sampan.runtime import console

    try:
        size = os.get_terminal_size(sys.stdin.fileno())
    except OSError:
        return
    console.set_size(master, size.lines, size.columns)


def _proxy_tty(master: int) -> None:
    """Copy stdin -> master and master -> stdout until the container side closes."""
    import termios
    import tty

    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        _copy_window_size(master)
    try:
        readers = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(readers, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed, the process is gone
                    return
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    readers.remove(stdin)
                    continue
                os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
