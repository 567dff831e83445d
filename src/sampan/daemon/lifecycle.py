"""The legal moves of a container, written once.

    created ──start──▶ running ──pause──▶ paused
                        │  ▲ ◀─unpause──┘
                   exit │  │ start / restart policy
                        ▼  │
                       exited ──remove──▶ (gone)

Each ``check_*`` raises the error Docker answers for an illegal move (``Conflict`` 409,
``NotModified`` 304) and returns quietly for a legal one.
"""

from __future__ import annotations

from sampan import errdefs
from sampan.daemon.model import PAUSED, REMOVING, RESTARTING, RUNNING, Container


def _name(container: Container) -> str:
    return container.name.lstrip("/")


def check_start(container: Container) -> None:
    status = container.state.status
    if status == PAUSED:
        raise errdefs.Conflict("cannot start a paused container, try unpause instead")
    if status in (RUNNING, RESTARTING):
        raise errdefs.NotModified(f"container {_name(container)} is already running")
    if status == REMOVING:
        raise errdefs.Conflict(f"container {_name(container)} is marked for removal")


def check_stop(container: Container) -> None:
    if container.state.status not in (RUNNING, PAUSED, RESTARTING):
        raise errdefs.NotModified(f"container {_name(container)} is already stopped")


def check_kill(container: Container) -> None:
    if container.state.status not in (RUNNING, PAUSED):
        raise errdefs.Conflict(
            f"cannot kill container: {_name(container)}: container {container.id} is not running"
        )


def check_pause(container: Container) -> None:
    if container.state.status == PAUSED:
        raise errdefs.Conflict(f"container {container.id} is already paused")
    if container.state.status != RUNNING:
        raise errdefs.Conflict(f"container {container.id} is not running")


def check_unpause(container: Container) -> None:
    if container.state.status != PAUSED:
        raise errdefs.Conflict(f"container {container.id} is not paused")


def check_exec(container: Container) -> None:
    if container.state.status == PAUSED:
        raise errdefs.Conflict(
            f"container {container.id} is paused, unpause the container before exec"
        )
    if container.state.status == RESTARTING:
        raise errdefs.Conflict(
            f"container {container.id} is restarting, wait until the container is running"
        )
    if container.state.status != RUNNING:
        raise errdefs.Conflict(f"container {container.id} is not running")


def check_attach(container: Container) -> None:
    if container.state.status == PAUSED:
        raise errdefs.Conflict(
            f"container {container.id} is paused, unpause the container before attach"
        )
    if container.state.status == RESTARTING:
        raise errdefs.Conflict(
            f"container {container.id} is restarting, wait until the container is running"
        )


def check_remove(container: Container, force: bool) -> None:
    if container.state.status == REMOVING:
        raise errdefs.Conflict(f"removal of container {_name(container)} is already in progress")
    if force:
        return
    if container.state.status == PAUSED:
        raise errdefs.Conflict(
            f"cannot remove container \"{container.name}\": container is paused and must be "
            "unpaused first"
        )
    if container.state.status in (RUNNING, RESTARTING):
        raise errdefs.Conflict(
            f"cannot remove container \"{container.name}\": container is running: stop the "
            "container before removing or force remove"
        )
