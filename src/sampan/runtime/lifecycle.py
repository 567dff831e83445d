"""start, kill, pause, resume, delete: the legal moves between the OCI states.

created --start--> running --pause--> paused --resume--> running
   any live state --kill--> (signal)          stopped --delete--> removed
An illegal move raises ``errdefs.Conflict`` with the wording callers match on
("container not running", "cannot start a container that has stopped").
"""

import os
import select
import signal
import sys
import time

from sampan import errdefs
from sampan.runtime import state
from sampan.runtime.container import Container
from sampan.runtime.hooks import run_hooks


def start(root: str, container_id: str) -> Container:
    container = Container(root, container_id)
    status = container.status()
    if status == state.STOPPED:
        raise errdefs.Conflict("cannot start a container that has stopped")
    if status == state.PAUSED:
        raise errdefs.Conflict("cannot start a paused container: resume it first")
    if status != state.CREATED:
        raise errdefs.Conflict("cannot start an already running container")
    fifo = os.path.join(root, container_id, state.EXEC_FIFO)
    # O_NONBLOCK: opening the read end must not wait for a writer that may have died
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100) and os.read(fd, 1):
                break
            if not state.init_alive(container.record):
                raise errdefs.Conflict("cannot start a container that has stopped")
    finally:
        os.close(fd)
    os.unlink(fifo)
    try:
        run_hooks(container.config.get("hooks"), "poststart",
                  state.oci_state(container.record, state.RUNNING), cwd=container.record["bundle"])
    except errdefs.SampanError as exc:
        sys.stderr.write(f"warning: poststart hook failed: {exc}\n")
    return container


def kill(root: str, container_id: str, signum: int, all_processes: bool = False) -> None:
    container = Container(root, container_id)
    if all_processes:
        # Also once the init has exited, as runc does: without a pid namespace of its own its
        # children outlive it, and containerd sends `kill --all 9` to reap them.
        container.cgroup.kill_all(signum)
        return
    if container.status() == state.STOPPED:
        raise errdefs.Conflict("container not running")
    try:
        os.kill(container.pid, signum)
    except ProcessLookupError:
        raise errdefs.Conflict("container not running") from None


def pause(root: str, container_id: str) -> None:
    container = Container(root, container_id)
    status = container.status()
    # as runc: a created container can be paused too (its init is frozen before the exec)
    if status not in (state.RUNNING, state.CREATED):
        raise errdefs.Conflict(f"cannot pause a {status} container")
    container.cgroup.freeze()


def resume(root: str, container_id: str) -> None:
    container = Container(root, container_id)
    status = container.status()
    if status != state.PAUSED:
        raise errdefs.Conflict(f"cannot resume a {status} container: container not paused")
    container.cgroup.thaw()


def wait_gone(pid_alive: "Container", timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while state.init_alive(pid_alive.record):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def delete(root: str, container_id: str, force: bool = False) -> None:
    try:
        container = Container(root, container_id)
    except errdefs.NotFound:
        if force:
            return
        raise
    status = container.status()
    if status in (state.RUNNING, state.PAUSED) and not force:
        raise errdefs.Conflict(
            f"cannot delete container {container_id} that is not stopped: {status}")
    if status != state.STOPPED:
        _kill_everything(container, status)
    elif not container.has_private_pid_ns() and container.cgroup.pids():
        # Without a pid namespace of its own, the init's death does not kill its children
        # (pid_namespaces(7)): they are still in the cgroup and would keep it busy (runc's
        # destroy SIGKILLs them the same way).
        container.cgroup.kill_all(signal.SIGKILL)
    try:
        container.cgroup.destroy()
    except OSError as exc:
        sys.stderr.write(f"warning: removing the cgroup of {container_id}: {exc}\n")
    try:
        run_hooks(container.config.get("hooks"), "poststop",
                  state.oci_state(container.record, state.STOPPED),
                  cwd=container.record["bundle"])
    except errdefs.SampanError as exc:
        sys.stderr.write(f"warning: poststop hook failed: {exc}\n")
    state.remove_container_dir(root, container_id)


def _kill_everything(container: Container, status: str) -> None:
    """SIGKILL the init (and, without a private pid namespace, every process of the cgroup)."""
    try:
        if container.has_private_pid_ns():
            os.kill(container.pid, signal.SIGKILL)
        else:
            container.cgroup.kill_all(signal.SIGKILL)
    except ProcessLookupError:
        pass
    if status == state.PAUSED:
        container.cgroup.thaw()  # a frozen process cannot act on SIGKILL
    if not wait_gone(container):
        raise errdefs.System(f"container {container.id} did not die after SIGKILL")
