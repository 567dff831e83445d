"""Health checks: run the container's ``Healthcheck.Test`` in it on a timer and keep
``State.Health`` (status, failing streak, last five results) as Docker does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sampan import errdefs
from sampan.daemon.containers import ContainerService
from sampan.daemon.execs import ExecService
from sampan.daemon.model import (
    HEALTH_HEALTHY,
    HEALTH_STARTING,
    HEALTH_UNHEALTHY,
    RUNNING,
    Container,
    HealthState,
)
from sampan.daemon.timefmt import rfc3339_nano

log = logging.getLogger("sampand.health")

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
KEPT_RESULTS = 5
MAX_OUTPUT = 4096


def health_command(test: list[str]) -> list[str] | None:
    """``["CMD", a...]`` -> argv; ``["CMD-SHELL", s]`` -> ``/bin/sh -c s``; NONE/empty: None."""
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test)


def _seconds(value: Any, default: float) -> float:
    return value / 1e9 if isinstance(value, int) and value > 0 else default


def record_result(health: HealthState, exit_code: int, output: bytes, start_ns: int,
                  end_ns: int, retries: int, in_start_period: bool) -> None:
    """Docker's rules: success -> healthy; a failure counts towards ``retries`` (not during
    the start period) and makes the container unhealthy when the streak reaches it."""
    health.log.append({"Start": rfc3339_nano(start_ns), "End": rfc3339_nano(end_ns),
                       "ExitCode": exit_code,
                       "Output": output[:MAX_OUTPUT].decode(errors="replace")})
    del health.log[:-KEPT_RESULTS]
    if exit_code == 0:
        health.status = HEALTH_HEALTHY
        health.failing_streak = 0
        return
    if in_start_period and health.status == HEALTH_STARTING:
        return
    health.failing_streak += 1
    if health.failing_streak >= retries:
        health.status = HEALTH_UNHEALTHY


class HealthMonitor:
    def __init__(self, *, containers: ContainerService, execs: ExecService) -> None:
        self._containers = containers
        self._execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def attach(self) -> None:
        self._containers.on_started = self.start_for
        self._containers.on_stopped = self.stop_for

    def start_for(self, container: Container) -> None:
        health = container.config.get("Healthcheck") or {}
        command = health_command(list(health.get("Test") or []))
        if command is None or container.id in self._tasks:
            return
        if container.state.health is None:
            container.state.health = HealthState()
        task = asyncio.get_running_loop().create_task(self._probe(container, command, health))
        self._tasks[container.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(container.id, None))

    def stop_for(self, container: Container) -> None:
        task = self._tasks.pop(container.id, None)
        if task is not None:
            task.cancel()

    def stop_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()

    async def _probe(self, container: Container, command: list[str],
                     health: dict[str, Any]) -> None:
        interval = _seconds(health.get("Interval"), DEFAULT_INTERVAL)
        timeout = _seconds(health.get("Timeout"), DEFAULT_TIMEOUT)
        start_period = _seconds(health.get("StartPeriod"), 0.0)
        start_interval = _seconds(health.get("StartInterval"), interval)
        retries = int(health.get("Retries") or DEFAULT_RETRIES)
        while container.state.status == RUNNING:
            in_start = (time.time_ns() - container.state.started_at) / 1e9 < start_period
            await asyncio.sleep(start_interval if in_start else interval)
            if container.state.status != RUNNING or container.state.health is None:
                return
            start = time.time_ns()
            try:
                exit_code, output = await self._execs.run_for_output(container, command,
                                                                     timeout)
            except (errdefs.SampanError, TimeoutError) as exc:
                exit_code, output = -1, str(exc).encode()
            state = container.state.health
            if state is None or container.state.status != RUNNING:
                return
            before = state.status
            in_start = (start - container.state.started_at) / 1e9 < start_period
            record_result(state, exit_code, output, start, time.time_ns(), retries, in_start)
            with contextlib.suppress(errdefs.SampanError):
                self._containers.save(container)
            if state.status != before:
                self._containers.publish(container, f"health_status: {state.status}")
