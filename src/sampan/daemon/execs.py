"""``ExecService``: processes started in a running container (``docker exec``).

Execs live in memory, as in Docker: a restarted daemon forgets them. The process spec is the
container's own (capabilities, seccomp, rlimits, apparmor...) with argv, env, cwd, user and
terminal replaced, which is what Docker's exec does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sampan import errdefs
from sampan.daemon import lifecycle
from sampan.daemon.attach import ProcessAttach
from sampan.daemon.containers import ContainerService
from sampan.daemon.create_config import merge_env
from sampan.daemon.model import Container
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.supervision import Supervisor
from sampan.daemon.users import resolve_user

MAX_EXECS_KEPT = 4096
log = logging.getLogger("sampand.execs")


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor_at: float = 0.0  # when the supervisor was asked (for the debug log)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def exec_process(container_process: dict[str, Any], config: dict[str, Any], rootfs: str,
                 container: Container) -> dict[str, Any]:
    """The OCI process for an exec (``rootfs``: where /etc/passwd is read for ``User``)."""
    process: dict[str, Any] = json.loads(json.dumps(container_process))
    process["args"] = list(config["Cmd"])
    process["env"] = merge_env(list(process.get("env") or []), list(config.get("Env") or []))
    process["terminal"] = bool(config.get("Tty"))
    if config.get("WorkingDir"):
        process["cwd"] = config["WorkingDir"]
    user = config.get("User") or container.config.get("User") or ""
    if config.get("User"):
        resolved = resolve_user(user, _read(os.path.join(rootfs, "etc/passwd")),
                                _read(os.path.join(rootfs, "etc/group")))
        process["user"] = {"uid": resolved.uid, "gid": resolved.gid,
                           "additionalGids": resolved.additional_gids}
    if config.get("ConsoleSize"):
        height, width = config["ConsoleSize"]
        if height and width:
            process["consoleSize"] = {"height": height, "width": width}
    else:
        process.pop("consoleSize", None)
    if config.get("Privileged"):
        caps = process.get("capabilities") or {}
        everything = sorted(set().union(*[set(v) for v in caps.values()])) if caps else []
        process["capabilities"] = {k: everything for k in
                                   ("bounding", "effective", "permitted")}
    return process


class ExecService:
    def __init__(self, *, paths: DaemonPaths, containers: ContainerService,
                 supervisor: Supervisor) -> None:
        self._paths = paths
        self._containers = containers
        self._supervisor = supervisor
        self._execs: dict[str, ExecRecord] = {}
        containers.on_exec_exit = self.handle_exit

    def _get(self, exec_id: str) -> ExecRecord:
        record = self._execs.get(exec_id)
        if record is None:
            raise errdefs.NotFound(f"No such exec instance: {exec_id}")
        return record

    async def exec_create(self, container_ref: str, config: dict[str, Any]) -> str:
        container = self._containers.get(container_ref)
        lifecycle.check_exec(container)
        cmd = config.get("Cmd")
        if not cmd or not isinstance(cmd, list):
            raise errdefs.InvalidParameter("No exec command specified")
        exec_id = secrets.token_hex(32)
        self._execs[exec_id] = ExecRecord(exec_id, container.id, dict(config))
        self._containers.live(container.id).exec_ids.append(exec_id)
        self._forget_old()
        self._containers.publish(container, f"exec_create: {' '.join(cmd)}", execID=exec_id)
        return exec_id

    def _forget_old(self) -> None:
        if len(self._execs) <= MAX_EXECS_KEPT:
            return
        for exec_id, record in list(self._execs.items()):
            if record.exit_code is not None:
                self._drop(exec_id)
            if len(self._execs) <= MAX_EXECS_KEPT // 2:
                break

    def _drop(self, exec_id: str) -> None:
        record = self._execs.pop(exec_id, None)
        if record is None:
            return
        with contextlib.suppress(errdefs.NotFound, ValueError):
            self._containers.live(record.container_id).exec_ids.remove(exec_id)

    async def exec_start(self, exec_id: str, *, detach: bool, tty: bool,
                    console_size: tuple[int, int] | None) -> ProcessAttach | None:
        record = self._get(exec_id)
        if record.started:
            raise errdefs.Conflict(f"exec {exec_id} has already been started")
        container = self._containers.get(record.container_id)
        lifecycle.check_exec(container)
        record.started = True
        began = time.perf_counter()
        config = dict(record.config)
        if console_size and not config.get("ConsoleSize"):
            config["ConsoleSize"] = list(console_size)
        bundle = self._paths.bundle(container.id)
        try:
            with open(os.path.join(bundle, "config.json")) as handle:
                container_process = json.load(handle)["process"]
        except (OSError, ValueError, KeyError) as exc:
            raise errdefs.Conflict(f"container {container.id} is not running") from exc
        process = exec_process(container_process, config, self._paths.rootfs(container.id),
                               container)
        terminal = bool(config.get("Tty"))
        want_stdin = bool(config.get("AttachStdin"))
        record.supervisor_at = time.perf_counter()
        record.pid = await self._supervisor.exec(
            container.id, exec_id, process, terminal=terminal, open_stdin=want_stdin,
            detach=detach)
        record.running = True
        started = time.perf_counter()
        self._containers.publish(container, f"exec_start: {' '.join(config['Cmd'])}",
                                 execID=exec_id)
        if detach:
            return None

        async def wait_exit() -> None:
            # The CLI reads ExitCode right after the stream ends: record it first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.exited.wait(), 10)

        attacher = ProcessAttach(tty=terminal, want_stdin=want_stdin, stdin_once=True,
                                 before_end=wait_exit)
        try:
            reader, writer = await self._supervisor.attach(
                container.id, exec_id=exec_id, stdin=want_stdin,
                stdout=bool(config.get("AttachStdout", True)),
                stderr=bool(config.get("AttachStderr", True)),
                keep_stdin=attacher.keeps_stdin)
        except errdefs.SampanError:
            attacher.end()
        else:
            attacher.connect(reader, writer)
        log.debug("exec %s started: prepare %.1f ms, runtime %.1f ms, attach %.1f ms",
                  exec_id[:12], (record.supervisor_at - began) * 1000,
                  (started - record.supervisor_at) * 1000,
                  (time.perf_counter() - started) * 1000)
        return attacher

    async def handle_exit(self, event: dict[str, Any]) -> None:
        record = self._execs.get(str(event.get("exec_id")))
        if record is None:
            return
        record.running = False
        record.exit_code = int(event.get("exit_code", 0))
        record.exited.set()
        container = self._containers.find(record.container_id)
        if container is not None:
            self._containers.publish(container, "exec_die", execID=record.id,
                                     exitCode=str(record.exit_code))

    async def exec_resize(self, exec_id: str, *, height: int, width: int) -> None:
        record = self._get(exec_id)
        if not record.running:
            raise errdefs.Conflict(f"exec {exec_id} is not running")
        await self._supervisor.resize(record.container_id, height, width, exec_id=exec_id)

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        record = self._get(exec_id)
        cmd = list(record.config.get("Cmd") or [])
        return {
            "ID": record.id,
            "Running": record.running,
            "ExitCode": record.exit_code,
            "ProcessConfig": {
                "tty": bool(record.config.get("Tty")),
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(record.config.get("Privileged")),
                "user": record.config.get("User") or "",
            },
            "OpenStdin": bool(record.config.get("AttachStdin")),
            "OpenStderr": bool(record.config.get("AttachStderr")),
            "OpenStdout": bool(record.config.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": record.container_id,
            "DetachKeys": record.config.get("DetachKeys") or "",
            "Pid": record.pid,
        }

    async def run_for_output(self, container: Container, cmd: list[str],
                             timeout: float) -> tuple[int, bytes]:
        """Run ``cmd`` in the container and collect its output (health checks)."""
        exec_id = secrets.token_hex(32)
        record = ExecRecord(exec_id, container.id, {"Cmd": cmd, "AttachStdout": True,
                                                    "AttachStderr": True})
        self._execs[exec_id] = record
        try:
            attacher = await self.exec_start(exec_id, detach=False, tty=False, console_size=None)
            assert attacher is not None
            output = bytearray()

            async def collect() -> None:
                while True:
                    piece = await attacher.read()
                    if piece is None:
                        return
                    if len(output) < 4096:
                        output.extend(piece[1])

            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                with contextlib.suppress(errdefs.SampanError):
                    await self._supervisor.kill(container.id, 9, exec_id=exec_id)
                await attacher.close()
                return -1, bytes(output)
            await attacher.close()
            await asyncio.wait_for(record.exited.wait(), 5)
            return record.exit_code if record.exit_code is not None else -1, bytes(output)
        finally:
            self._drop(exec_id)
