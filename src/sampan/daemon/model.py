"""The daemon's record of a container: Docker's Config and HostConfig as sent, plus state.

Stored whole as one JSON document per container in ``state.db`` (see ``store.py``); every
change is one transaction, so a crash leaves the previous or the next version, never a mix.
Times are integer nanoseconds since the epoch, 0 meaning "never".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Container status values, as Docker's ``State.Status``.
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"

HEALTH_STARTING = "starting"
HEALTH_HEALTHY = "healthy"
HEALTH_UNHEALTHY = "unhealthy"


@dataclass
class HealthState:
    status: str = HEALTH_STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)  # Docker's HealthcheckResult


@dataclass
class ContainerState:
    status: str = CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: int = 0
    finished_at: int = 0
    oom_killed: bool = False
    health: HealthState | None = None

    @property
    def running(self) -> bool:
        """Docker's ``State.Running``: true while paused or restarting too."""
        return self.status in (RUNNING, PAUSED)


@dataclass
class Container:
    id: str
    name: str  # with the leading "/"
    created: int
    image: str  # as the user gave it (Config.Image)
    image_id: str  # sha256:... ("" for none)
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's Config, image defaults merged in
    host_config: dict[str, Any]
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    manually_stopped: bool = False
    runtime: str = "runc"
    platform: str = "linux"
    driver: str = "overlay2"
    # Docker's MountPoints (daemon/mounts.py ``MountPoint`` as JSON), made at create
    mount_points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Container:
        state_data = dict(data.get("state") or {})
        health_data = state_data.pop("health", None)
        state = ContainerState(**state_data)
        if health_data is not None:
            state.health = HealthState(**health_data)
        fields = {k: v for k, v in data.items() if k != "state"}
        return cls(state=state, **fields)
