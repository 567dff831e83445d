"""``sampan-runc --standby``: a runtime process started ahead of need, waiting for its command.

A Python runtime pays its interpreter start-up and imports (about 40 ms here) on every call,
more than the work of most verbs. A caller that runs the runtime often (the supervisor) keeps
one of these ready: it has done its imports and waits on fd 0, a unix socket, for one message:

* the data: the command line after the program name (``--root R ... exec ... ID``), the
  arguments separated by NUL bytes;
* the ancillary data (SCM_RIGHTS): three fds that become its stdin, stdout and stderr.

It then runs exactly as ``sampan-runc <arguments>`` with those fds would (same exit status,
same output, same ``--log``), and exits. EOF without a message: it exits 0 at once (the caller
went away). The command-line contract is unchanged for every other caller (dockerd, runc's
users): this is an extra entry, not a different runtime.
"""

import importlib
import os
import socket

# What the verbs import on demand: loaded while waiting, so a call pays none of it.
_PRELOAD = (
    "sampan.runtime.cli.create", "sampan.runtime.cli.start", "sampan.runtime.cli.exec",
    "sampan.runtime.cli.kill", "sampan.runtime.cli.delete", "sampan.runtime.cli.state",
    "sampan.runtime.cli.pause", "sampan.runtime.cli.resume", "sampan.runtime.cli.update",
    "sampan.runtime.create", "sampan.runtime.execute", "sampan.runtime.init",
    "sampan.runtime.foreground", "sampan.runtime.console", "sampan.runtime.seccomp",
)
_MAX_MESSAGE = 1 << 20
_PRIMED_VERBS = {"run", "create", "exec"}


def _receive(control: socket.socket) -> tuple[list[str], list[int]] | None:
    message, fds, _flags, _address = socket.recv_fds(control, _MAX_MESSAGE, 3)
    if not message:
        for fd in fds:
            os.close(fd)
        return None
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise SystemExit(f"sampan-runc --standby: got {len(fds)} fds, want 3")
    return message.decode("utf-8", "surrogateescape").split("\0"), fds


def serve() -> int:
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a verb that cannot load fails as it would have on a normal start
    control = socket.socket(fileno=os.dup(0))
    try:
        received = _receive(control)
    except OSError:
        return 1
    finally:
        control.close()
    if received is None:
        return 0
    argv, fds = received
    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # inheritable, as a freshly started program's 0/1/2
        if fd > 2:
            os.close(fd)
    if _PRIMED_VERBS & set(argv[:8]):
        from sampan.runtime.cgroup_prime import prime_migration_lock

        prime_migration_lock()
    from sampan.runtime.cli.main import main

    return main(argv)
