"""sampan-supervisor [--exec-root DIR] [--socket PATH] [--detach] [--log-file PATH]

One long-lived process per exec-root. ``--detach`` double-forks into a new session (the
caller, e.g. sampand, can die without taking us along) and returns once the socket accepts
connections. A second supervisor for the same exec-root finds ``supervisor.pid`` locked and
exits 0: the one running serves.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import sys
import time

DEFAULT_EXEC_ROOT = "/run/sampan"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sampan-supervisor", description=__doc__.split("\n")[2])
    parser.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT)
    parser.add_argument("--socket", default=None, help="default: <exec-root>/supervisor.sock")
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--log-file", default=None, help="default: <exec-root>/supervisor.log")
    return parser.parse_args(argv)


def _lock(exec_root: str) -> int | None:
    """Hold ``supervisor.pid`` locked for our lifetime, or None if another supervisor does."""
    fd = os.open(os.path.join(exec_root, "supervisor.pid"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _redirect_stdio(log_file: str) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    log = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    exec_root = os.path.abspath(args.exec_root)
    os.makedirs(exec_root, mode=0o711, exist_ok=True)
    socket_path = args.socket or os.path.join(exec_root, "supervisor.sock")
    log_file = args.log_file or os.path.join(exec_root, "supervisor.log")
    ready_w = -1
    if args.detach:
        ready_r, ready_w = os.pipe()
        if os.fork() > 0:
            os.close(ready_w)
            with os.fdopen(ready_r, "rb") as ready:
                answer = ready.read()
            sys.stdout.write(answer.decode(errors="replace"))
            return 0 if answer.startswith(b"ready") else 1
        os.close(ready_r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        _redirect_stdio(log_file)
    os.chdir("/")
    os.umask(0o022)
    lock = _lock(exec_root)
    if lock is None:  # another supervisor serves (or is about to: wait for its socket)
        if _wait_for_socket(socket_path, 30):
            _report(ready_w, b"ready (already running)\n")
            return 0
        _report(ready_w, b"another supervisor holds the lock but does not serve\n")
        return 1
    # heavy imports after the lock: a second supervisor exits before paying for them
    from sampan.kernel.process import set_child_subreaper
    from sampan.supervisor.server.service import Supervisor

    set_child_subreaper()
    supervisor = Supervisor(exec_root)
    supervisor.install_signal_handlers()
    supervisor.restore()
    supervisor.listen(socket_path)
    _report(ready_w, f"ready {os.getpid()}\n".encode())
    supervisor.serve_forever()
    os.close(lock)
    return 0


def _wait_for_socket(path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
                return True
            except OSError:
                pass
        time.sleep(0.01)
    return False


def _report(ready_w: int, message: bytes) -> None:
    if ready_w >= 0:
        os.write(ready_w, message)
        os.close(ready_w)


if __name__ == "__main__":
    sys.exit(main())
