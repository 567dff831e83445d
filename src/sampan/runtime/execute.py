"""``exec``: run another process inside a running container's namespaces and cgroup."""


from __future__ import annotations

import os
import socket

from sampan import errdefs
from sampan.kernel.namespaces import NAMESPACES
from sampan.runtime import protocol, spec, state
from sampan.runtime.cgroup_prime import release_migration_lock
from sampan.runtime.container import Container
from sampan.runtime.create import compile_seccomp, write_pid_file
from sampan.runtime.init import ExecPlan, preload_console, run_exec_stage1

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Started:
    def __init__(self, pid: int, pty_master: int | None) -> None:
        self.pid = pid
        self.pty_master = pty_master


def namespaces_to_join(container: Container) -> list[tuple[str, str]]:
    """/proc/<init>/ns files that differ from ours; the user namespace first (the others
    are owned by it, and setns(2) into them needs the capabilities it gives)."""
    joins: list[tuple[str, str]] = []
    for kind in ("user", "ipc", "uts", "network", "pid", "cgroup", "mount"):
        name = NAMESPACES[kind][1]
        theirs = f"/proc/{container.pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except FileNotFoundError:
            continue
        joins.append((kind, theirs))
    return joins


def exec_process(root: str, container_id: str, process: dict[str, Any], *,
                 pid_file: str | None = None, console_socket: str | None = None,
                 preserve_fds: int = 0, foreground_tty: bool = False) -> Started:
    container = Container(root, container_id)
    status = container.status()
    if status == state.STOPPED:
        raise errdefs.Conflict("cannot exec in a stopped container")
    if status == state.PAUSED:
        raise errdefs.Conflict("cannot exec in a paused container")
    spec.validate_process(process)
    if process.get("terminal") and not console_socket and not foreground_tty:
        raise errdefs.InvalidParameter(
            "cannot allocate tty if sampan-runc will detach without setting console socket")
    seccomp = compile_seccomp(container.config, root)
    console_sock = None
    if console_socket:
        console_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console_sock.connect(console_socket)
    parent_end, child_end = protocol.channel()
    plan = ExecPlan(process, namespaces_to_join(container), child_end, console_sock, seccomp,
                    preserve_fds, foreground_tty)
    preload_console(process)
    stage1 = os.fork()
    if stage1 == 0:
        parent_end.close()
        run_exec_stage1(plan)
    child_end.close()
    if console_sock is not None:
        console_sock.close()
    pid = 0
    pty_master = None
    try:
        protocol.send(parent_end, protocol.GO)
        while True:
            message, fds = protocol.receive(parent_end)
            kind = message["kind"]
            if kind == protocol.INIT_PID:
                pid = message["pid"]
                try:
                    container.cgroup.add_process(pid)
                    protocol.send(parent_end, protocol.CGROUP_DONE)
                    release_migration_lock()
                except OSError:
                    # the process may have failed its checks and exited meanwhile
                    queued = protocol.queued_error(parent_end)
                    if queued is not None:
                        raise errdefs.System(
                            f"exec failed: {queued.get('step')}: {queued.get('message')}"
                        ) from None
                    raise
                os.waitpid(stage1, 0)
                stage1 = 0
            elif kind == protocol.PTY_MASTER:
                pty_master = fds[0]
            elif kind == protocol.READY:
                break
            elif kind == protocol.ERROR:
                raise errdefs.System(f"exec failed: {message['step']}: {message['message']}")
    except protocol.ProtocolError as exc:
        raise errdefs.System(f"exec failed: {exc}") from None
    except BaseException:
        import signal

        for child in (stage1, pid):
            if child:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if stage1:
            os.waitpid(stage1, 0)
        raise
    finally:
        parent_end.close()
    if pid_file:
        write_pid_file(pid_file, pid)
    return Started(pid, pty_master)
