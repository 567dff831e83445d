"""The human status strings of ``docker ps`` and the ``State`` word, as Docker computes them."""

from __future__ import annotations

from sampan.daemon.model import (
    CREATED,
    DEAD,
    EXITED,
    HEALTH_STARTING,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    ContainerState,
)
from sampan.daemon.timefmt import human_duration


def health_string(status: str) -> str:
    return "health: starting" if status == HEALTH_STARTING else status


def status_string(state: ContainerState, now_ns: int) -> str:
    """``Up 3 seconds``, ``Up 5 minutes (healthy)``, ``Exited (0) 2 seconds ago``, ``Created``."""
    if state.status in (RUNNING, PAUSED):
        up = human_duration((now_ns - state.started_at) / 1e9)
        if state.status == PAUSED:
            return f"Up {up} (Paused)"
        if state.health is not None:
            return f"Up {up} ({health_string(state.health.status)})"
        return f"Up {up}"
    if state.status == RESTARTING:
        ago = human_duration((now_ns - state.finished_at) / 1e9)
        return f"Restarting ({state.exit_code}) {ago} ago"
    if state.status == REMOVING:
        return "Removal In Progress"
    if state.status == DEAD:
        return "Dead"
    if state.started_at == 0:
        return "Created"
    if state.finished_at == 0:
        return ""
    ago = human_duration((now_ns - state.finished_at) / 1e9)
    return f"Exited ({state.exit_code}) {ago} ago"


def state_word(state: ContainerState) -> str:
    """``State`` in ``docker ps`` JSON and the ``status`` filter's vocabulary."""
    if state.status in (RUNNING, PAUSED, RESTARTING, REMOVING, DEAD):
        return state.status
    if state.started_at == 0 and state.status == CREATED:
        return CREATED
    return EXITED
