"""``sampan-runc --standby``: a runtime fork server, its imports done, forking one runtime call
per request.

A Python runtime pays its interpreter start-up and imports (about 40 ms of CPU here) on every
call, more than the work of most verbs. A caller that runs the runtime often (the supervisor)
keeps one of these: fd 0 is a unix SOCK_SEQPACKET socket to it.

* request: one packet, the command line after the program name (``--root R ... exec ... ID``)
  with its arguments separated by NUL bytes, and three fds (SCM_RIGHTS) for stdin, stdout and
  stderr. The server forks; the child makes those fds its 0/1/2 and runs exactly as
  ``sampan-runc <arguments>`` would (same output, same ``--log``, same exit status).
* replies: ``pid <pid>`` once the child exists (one per request, in order), and
  ``exit <pid> <wait status>`` when a child has exited (it is the server's child, so the server
  reaps it and reports).

EOF on the socket: the server exits (children still running are re-parented, to the caller
when it is a child subreaper, which then reaps them itself). The command-line contract is
unchanged for every other caller (dockerd, runc's users): this is an extra entry.
"""

import importlib
import os
import selectors
import signal
import socket
import sys

# What the verbs import on demand: loaded once here, so a call pays none of it.
_PRELOAD = (
    "sampan.runtime.cli.create", "sampan.runtime.cli.start", "sampan.runtime.cli.exec",
    "sampan.runtime.cli.kill", "sampan.runtime.cli.delete", "sampan.runtime.cli.state",
    "sampan.runtime.cli.pause", "sampan.runtime.cli.resume", "sampan.runtime.cli.update",
    "sampan.runtime.create", "sampan.runtime.execute", "sampan.runtime.init",
    "sampan.runtime.foreground", "sampan.runtime.console", "sampan.runtime.seccomp",
    "sampan.runtime.seccomp.cache", "hashlib", "sampan.runtime.cgroups.devices",
    "sampan.runtime.cgroups.files", "sampan.runtime.cgroups.hybrid",
    "sampan.runtime.cgroups.plan", "sampan.runtime.cgroups.v1", "sampan.runtime.cgroups.v2",
    "sampan.runtime.cli.main",
)
_MAX_MESSAGE = 1 << 20


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _run_child(argv: list[str], fds: list[int]) -> int:
    """In the forked child: become ``sampan-runc <argv>`` with ``fds`` as 0/1/2."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # inheritable, as a freshly started program's 0/1/2
    _close_all([fd for fd in fds if fd > 2])
    from sampan.runtime.cli.main import main

    return main(argv)


def _fork_call(control: socket.socket, selector: selectors.BaseSelector, wake_r: int,
               argv: list[str], fds: list[int]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            selector.close()
            control.close()
            os.close(wake_r)
            code = _run_child(argv, fds)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child must never return to the loop
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)
    _close_all(fds)
    return pid


def serve() -> int:
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a verb that cannot load fails as it would have on a normal start
    from sampan.runtime.cgroup_prime import prime_migration_lock

    # Ready: keep the cgroup migration lock warm for its short deadline, so that calls
    # arriving soon (they come in bursts: create, start, delete) find the fast path; every
    # request extends it.
    prime_migration_lock()
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # fd 0 no longer holds the control socket
    os.close(devnull)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                try:
                    message, fds, _flags, _address = socket.recv_fds(control, _MAX_MESSAGE, 3)
                except InterruptedError:
                    continue
                except OSError:
                    return 1
                if not message:
                    _close_all(fds)
                    return 0
                if len(fds) != 3:
                    _close_all(fds)
                    control.send(b"error want 3 fds")
                    continue
                argv = message.decode("utf-8", "surrogateescape").split("\0")
                # keep the migration lock warm from now on (for this call's cgroup moves,
                # and the next call's if it comes within the deadline)
                prime_migration_lock()
                pid = _fork_call(control, selector, wake_r, argv, fds)
                control.send(f"pid {pid}".encode())
            else:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    try:
                        control.send(f"exit {pid} {status}".encode())
                    except OSError:
                        return 1
