"""``ContainerService``: the containers' lifecycle, over the supervisor, the layer store and
``state.db``.

Concurrency: one asyncio task per request plus one that consumes the supervisor's exit
events (:meth:`run_exit_events`). An operation that changes a container takes its lock;
exit handling does not (``stop`` holds the lock while it waits for the exit), it only
moves the record to ``exited`` and wakes whoever waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import random
import secrets
import shlex
import shutil
import signal as _signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from sampan import errdefs
from sampan.daemon import lifecycle
from sampan.daemon.attach import ProcessAttach
from sampan.daemon.create_config import (
    check_host_config,
    command_of,
    merge_image_config,
    parse_log_size,
)
from sampan.daemon.events import EventBus
from sampan.daemon.hostfiles import write_host_files
from sampan.daemon.list_filters import matcher, needs_all
from sampan.daemon.logs import LogQuery, follow_log, read_existing
from sampan.daemon.model import (
    CREATED,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
    ContainerState,
    HealthState,
)
from sampan.daemon.names import generate_name, normalize_name
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.restart import Backoff, should_restart, start_on_daemon_start
from sampan.daemon.rootfs import MountSpec, RootfsMounter
from sampan.daemon.shapes import inspect_json, summary_json
from sampan.daemon.signals import parse_signal
from sampan.daemon.stats import CgroupStats, stats_json
from sampan.daemon.store import ContainerStore
from sampan.daemon.supervision import Supervisor
from sampan.daemon.timefmt import parse_api_timestamp, parse_rfc3339
from sampan.daemon.top import filter_ps_output

log = logging.getLogger("sampand.containers")

DEFAULT_STOP_TIMEOUT = 10
DEFAULT_LOG_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 5
UNKNOWN_EXIT_CODE = 255


class ImageLookup(Protocol):
    """What containers need from the image store (``ImageStore`` implements it)."""

    def resolve(self, name: str) -> str: ...
    def config(self, image_id: str) -> dict[str, Any]: ...
    def top_chain_id(self, image_id: str) -> str | None: ...
    def inspect(self, name: str) -> dict[str, Any]: ...


class LayerAccess(Protocol):
    """What containers need from the layer store (``LayerStore`` implements it)."""

    driver_name: str

    def create_rw(self, container_id: str, image_chain_id: str | None) -> list[Any]: ...
    def rw_mounts(self, container_id: str) -> list[Any]: ...
    def remove_rw(self, container_id: str) -> None: ...
    def rw_size(self, container_id: str) -> int: ...
    def list_rw(self) -> list[str]: ...
    def changes(self, container_id: str) -> list[Any]: ...
    def export_rw(self, container_id: str) -> BinaryIO: ...


class ContainerNetworking(Protocol):
    """What containers need from the network service (``daemon.networks.NetworkService``)."""

    def check_create(self, host_config: dict[str, Any],
                     networking_config: dict[str, Any]) -> None: ...
    def record_create(self, container_id: str, host_config: dict[str, Any],
                      networking_config: dict[str, Any]) -> None: ...
    def forget(self, container_id: str) -> None: ...
    async def setup(self, container: Container) -> None: ...
    async def teardown(self, container_id: str) -> None: ...
    def settings(self, container: Container) -> dict[str, Any]: ...
    def summary(self, container: Container) -> tuple[list[dict[str, Any]], dict[str, Any]]: ...


class ContainerVolumes(Protocol):
    """What containers need from the volume service (``daemon.volumes.VolumeService``)."""

    async def create_mounts(self, container_id: str, config: dict[str, Any],
                            host_config: dict[str, Any]) -> list[dict[str, Any]]: ...
    async def setup_mounts(self, container: Container, rootfs: str) -> None: ...
    async def release_mounts(self, container: Container) -> None: ...
    async def remove_mounts(self, container: Container, remove_anonymous: bool) -> None: ...


BuildSpec = Callable[[Container, str, DaemonPaths], dict[str, Any]]
"""(container, rootfs path, paths) -> OCI config.json (the supervisor's exec driver)."""


@dataclass
class _Live:
    """In-memory companions of a record: lock, waiters, pending attachers, timers."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    exit_waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    removal_waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    pending_attach: list[tuple[ProcessAttach, bool, bool]] = field(default_factory=list)
    restart_task: asyncio.Task[None] | None = None
    # after an exit, in the background: the runtime's delete of the task, the root's unmount
    deleting: asyncio.Task[None] | None = None
    unmounting: asyncio.Task[None] | None = None
    health_task: asyncio.Task[None] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    exec_ids: list[str] = field(default_factory=list)


def image_familiar(name: str) -> str:
    """``busybox`` -> ``busybox:latest`` for Docker's "No such image" message."""
    if "@" in name or name.startswith("sha256:"):
        return name
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


class ContainerService:
    def __init__(
        self,
        *,
        paths: DaemonPaths,
        store: ContainerStore,
        images: ImageLookup,
        layers: LayerAccess,
        supervisor: Supervisor,
        events: EventBus,
        mounter: RootfsMounter,
        build_spec: BuildSpec,
        runtimes: dict[str, str],
        default_runtime: str,
        cgroups: CgroupStats | None = None,
        networking: ContainerNetworking | None = None,
        volumes: ContainerVolumes | None = None,
        default_log: dict[str, Any] | None = None,
    ) -> None:
        self._volumes = volumes
        self._default_log = default_log  # daemon.json log-driver / log-opts
        self._cgroups = cgroups or CgroupStats()
        self._networking = networking
        self._paths = paths
        self._store = store
        self._images = images
        self._layers = layers
        self._supervisor = supervisor
        self._events = events
        self._mounter = mounter
        self._build_spec = build_spec
        self._runtimes = runtimes
        self._default_runtime = default_runtime
        self._containers: dict[str, Container] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._live: dict[str, _Live] = {}
        self._rng = random.Random()
        self.on_exec_exit: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.on_started: Callable[[Container], None] | None = None
        self.on_stopped: Callable[[Container], None] | None = None

    # ------------------------------------------------------------------ lookup

    def all(self) -> list[Container]:
        return list(self._containers.values())

    def get(self, ref: str) -> Container:
        """By full ID, then name, then unique ID prefix (Docker's order)."""
        found = self._containers.get(ref)
        if found is not None:
            return found
        name = ref if ref.startswith("/") else "/" + ref
        for container in self._containers.values():
            if container.name == name:
                return container
        if ref:
            matches = [c for c in self._containers.values() if c.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise errdefs.InvalidParameter(
                    f"multiple IDs found with provided prefix: {ref}")
        raise errdefs.NotFound(f"No such container: {ref}")

    def find(self, container_id: str) -> Container | None:
        """The container with this full ID, if it still exists."""
        return self._containers.get(container_id)

    def live(self, container_id: str) -> _Live:
        return self._live.setdefault(container_id, _Live())

    def lock_of(self, container_id: str) -> asyncio.Lock:
        """The lock held by whatever changes the container (start, stop, remove...)."""
        return self.live(container_id).lock

    async def wait_released(self, container_id: str) -> None:
        """Wait for the unmount and runtime delete that follow an exit, if under way."""
        await self._released(container_id)

    def is_running(self, container_id: str) -> bool:
        container = self._containers.get(container_id)
        return container is not None and container.state.status in (RUNNING, PAUSED)

    def uses_image(self, image_id: str) -> bool:
        return any(c.image_id == image_id for c in self._containers.values())

    def runs_image(self, image_id: str) -> bool:
        return any(c.image_id == image_id and c.state.status in (RUNNING, PAUSED)
                   for c in self._containers.values())

    def save(self, container: Container) -> None:
        self._store.save(container)

    def _attributes(self, container: Container, **extra: str) -> dict[str, str]:
        attributes = {str(k): str(v) for k, v in (container.config.get("Labels") or {}).items()}
        attributes.update(image=container.image, name=container.name.lstrip("/"))
        attributes.update(extra)
        return attributes

    def publish(self, container: Container, action: str, **extra: str) -> None:
        self._events.publish("container", action, container.id,
                             self._attributes(container, **extra))

    # ------------------------------------------------------------------ create

    async def container_create(self, *, name: str | None, platform: str | None,
                               config: dict[str, Any], host_config: dict[str, Any],
                               networking_config: dict[str, Any]) -> dict[str, Any]:
        image_ref = config.get("Image") or ""
        if not isinstance(image_ref, str) or not image_ref:
            raise errdefs.InvalidParameter("config.Image must be a non-empty string")
        hc = check_host_config(host_config, self._runtimes, self._default_runtime,
                               self._default_log)
        if self._networking is not None:
            self._networking.check_create(hc, networking_config)
        stored_name = normalize_name(name) if name else ""
        try:
            image_id = await asyncio.to_thread(self._images.resolve, image_ref)
        except errdefs.NotFound as exc:
            raise errdefs.NotFound(f"No such image: {image_familiar(image_ref)}") from exc
        image_config = await asyncio.to_thread(self._images.config, image_id)
        merged = merge_image_config(config, image_config.get("config") or {})
        path, args = command_of(merged)
        container_id = secrets.token_hex(32)
        if not merged.get("Hostname"):
            merged["Hostname"] = container_id[:12]
        merged.setdefault("Domainname", "")
        merged["Image"] = image_ref
        for key in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                    "StdinOnce"):
            merged[key] = bool(merged.get(key))
        log_config = hc["LogConfig"]["Config"]
        if "max-size" in log_config:
            parse_log_size(str(log_config["max-size"]))
        container = Container(
            id=container_id,
            name=stored_name,
            created=time.time_ns(),
            image=image_ref,
            image_id=image_id,
            path=path,
            args=args,
            config=merged,
            host_config=hc,
            runtime=hc["Runtime"],
            driver=self._layers.driver_name,
        )
        files_dir = self._paths.container_dir(container_id)
        await asyncio.to_thread(
            write_host_files, files_dir, merged["Hostname"], merged.get("Domainname") or "",
            hc["NetworkMode"])
        if self._volumes is not None:
            container.mount_points = await self._volumes.create_mounts(
                container_id, merged, hc)
        top = await asyncio.to_thread(self._images.top_chain_id, image_id)
        await asyncio.to_thread(self._layers.create_rw, container_id, top)
        try:
            self._insert_with_name(container, explicit=bool(name))
        except BaseException:
            if self._volumes is not None:
                await self._volumes.remove_mounts(container, True)
            await asyncio.to_thread(self._layers.remove_rw, container_id)
            shutil.rmtree(files_dir, ignore_errors=True)
            raise
        self._containers[container_id] = container
        if self._networking is not None:
            self._networking.record_create(container_id, hc, networking_config)
        self.publish(container, "create")
        return {"Id": container_id, "Warnings": []}

    def _insert_with_name(self, container: Container, explicit: bool) -> None:
        if explicit:
            existing = next((c for c in self._containers.values()
                             if c.name == container.name), None)
            if existing is not None:
                raise errdefs.Conflict(
                    f'Conflict. The container name "{container.name}" is already in use by '
                    f'container "{existing.id}". You have to remove (or rename) that '
                    "container to be able to reuse that name.")
            self._store.insert(container)
            return
        for attempt in range(20):
            container.name = generate_name(self._rng, attempt)
            try:
                self._store.insert(container)
                return
            except errdefs.Conflict:
                continue
        container.name = "/" + container.id[:12]
        self._store.insert(container)

    # ------------------------------------------------------------------ start

    async def container_start(self, ref: str) -> None:
        container = self.get(ref)
        live = self.live(container.id)
        async with live.lock:
            lifecycle.check_start(container)
            container.manually_stopped = False
            failure: errdefs.SampanError | None = None
            try:
                await self._start_locked(container)
            except errdefs.SampanError as exc:
                failure = exc
        if failure is not None:
            # Docker removes an AutoRemove container whose start failed (``docker run --rm``
            # waits for that removal before it reports the error)
            if container.host_config.get("AutoRemove"):
                with contextlib.suppress(errdefs.SampanError):
                    await self.container_delete(container.id, force=True, volumes=True)
            raise failure

    async def _start_locked(self, container: Container) -> None:
        await self._released(container.id)
        live = self.live(container.id)
        bundle = self._paths.bundle(container.id)
        rootfs = self._paths.rootfs(container.id)
        times = [time.perf_counter()]  # for the debug log: prepare, create, start
        try:
            mounts: list[MountSpec] = await asyncio.to_thread(
                self._layers.rw_mounts, container.id)
            await asyncio.to_thread(self._mounter.mount, mounts, rootfs)
            if self._volumes is not None:
                await self._volumes.setup_mounts(container, rootfs)
            if self._networking is not None:
                await self._networking.setup(container)
            spec = self._build_spec(container, rootfs, self._paths)
            await asyncio.to_thread(_write_json, os.path.join(bundle, "config.json"), spec)
            log_config = container.host_config["LogConfig"]
            options = log_config.get("Config") or {}
            log_path = self._paths.log_path(container.id)
            if log_config["Type"] == "none":
                log_path = ""
            times.append(time.perf_counter())
            pid = await self._supervisor.create(
                container.id, bundle, runtime=self._runtimes[container.runtime],
                runtime_root=self._paths.runtime_root(container.runtime),
                terminal=container.tty, open_stdin=bool(container.config.get("OpenStdin")),
                log_path=log_path or None,
                log_max_size=parse_log_size(str(options.get("max-size") or "0"))
                or DEFAULT_LOG_MAX_SIZE,
                log_max_files=int(options.get("max-file") or DEFAULT_LOG_MAX_FILES),
            )
        except errdefs.SampanError as exc:
            await self._fail_start(container, exc)
            raise errdefs.System(f"failed to create task for container: {exc}") from exc
        except OSError as exc:
            await self._fail_start(container, exc)
            raise errdefs.System(f"cannot start container {container.id}: {exc}") from exc
        await self._connect_pending_attachers(container, live)
        container.state = ContainerState(
            status=RUNNING, pid=pid, started_at=time.time_ns(),
            health=HealthState() if self._has_healthcheck(container) else None)
        self.save(container)
        times.append(time.perf_counter())
        try:
            await self._supervisor.start(container.id)
        except errdefs.SampanError as exc:
            with contextlib.suppress(errdefs.SampanError):
                await self._supervisor.delete(container.id)
            await self._fail_start(container, exc)
            raise errdefs.System(f"cannot start container {container.id}: {exc}") from exc
        times.append(time.perf_counter())
        log.debug("started %s: prepare %.1f ms, create %.1f ms, start %.1f ms",
                  container.id[:12], *((b - a) * 1000 for a, b in itertools.pairwise(times)))
        self.publish(container, "start")
        if self.on_started is not None:
            self.on_started(container)

    def _has_healthcheck(self, container: Container) -> bool:
        test = (container.config.get("Healthcheck") or {}).get("Test") or []
        return bool(test) and test[0] != "NONE"

    async def _fail_start(self, container: Container, error: BaseException) -> None:
        message = str(error)
        await self._release_network(container.id)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._mounter.unmount, self._paths.rootfs(container.id))
        if self._volumes is not None:
            await self._volumes.release_mounts(container)
        container.state.status = CREATED if container.state.started_at == 0 else EXITED
        container.state.pid = 0
        container.state.error = message
        container.state.exit_code = 127 if ("not found" in message or "no such file" in message
                                            ) else 126 if "permission denied" in message else 128
        self.save(container)
        live = self.live(container.id)
        for attacher, _, _ in live.pending_attach:
            attacher.end()
        live.pending_attach.clear()

    async def _connect_pending_attachers(self, container: Container, live: _Live) -> None:
        pending, live.pending_attach = live.pending_attach, []
        for attacher, stdout, stderr in pending:
            try:
                reader, writer = await self._supervisor.attach(
                    container.id, stdin=attacher.wants_stdin, stdout=stdout, stderr=stderr,
                    keep_stdin=attacher.keeps_stdin)
            except errdefs.SampanError:
                attacher.end()
                continue
            attacher.connect(reader, writer)

    # ------------------------------------------------------------------ exits

    async def run_exit_events(self) -> None:
        """Consume the supervisor's exit events for ever (one task for the daemon). When the
        connection is lost, subscribe again and reconcile: exits may have happened meanwhile."""
        while True:
            try:
                async for event in self._supervisor.events():
                    await self._dispatch(event)
            except errdefs.Unavailable:
                log.warning("lost the supervisor; reconnecting")
            await asyncio.sleep(0.5)
            with contextlib.suppress(errdefs.SampanError, OSError):
                await self._reconcile(await self._supervisor.list())

    async def _dispatch(self, event: dict[str, Any]) -> None:
        try:
            if event.get("event") != "exit":
                return
            if event.get("exec_id"):
                if self.on_exec_exit is not None:
                    await self.on_exec_exit(event)
                return
            container = self._containers.get(str(event.get("id")))
            if container is None:
                return
            await self.handle_exit(container, int(event.get("exit_code", 0)),
                                   _event_time(event), bool(event.get("oom_killed")))
        except Exception:  # one bad event must not stop the loop
            log.exception("handling supervisor event %r", event)

    async def handle_exit(self, container: Container, exit_code: int, exited_at: int,
                          oom_killed: bool) -> None:
        if container.state.status not in (RUNNING, PAUSED):
            return
        log.debug("exit of %s seen %.1f ms after it happened", container.id[:12],
                  (time.time_ns() - exited_at) / 1e6)
        live = self.live(container.id)
        ran_for = (exited_at - container.state.started_at) / 1e9
        container.state.status = EXITED
        container.state.pid = 0
        container.state.exit_code = exit_code
        container.state.finished_at = exited_at
        container.state.oom_killed = oom_killed
        if live.health_task is not None:
            live.health_task.cancel()
            live.health_task = None
        self.save(container)
        # The runtime's delete and the unmount run in the background: waiters (``docker
        # stop``, ``docker wait``) answer now; anything that reuses or removes the container
        # (start, restart, delete) waits for them first (``_released``).
        live.deleting = self._in_background(self._delete_runtime_task(container.id))
        live.unmounting = self._in_background(self._unmount_root(container.id))
        if oom_killed:
            self.publish(container, "oom")
        self.publish(container, "die", exitCode=str(exit_code))
        if self.on_stopped is not None:
            self.on_stopped(container)
        result = {"StatusCode": exit_code, "Error": None}
        waiters, live.exit_waiters = live.exit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(result)
        policy = container.host_config.get("RestartPolicy") or {}
        if should_restart(policy, exit_code, container.restart_count,
                          container.manually_stopped):
            delay = live.backoff.next_delay(ran_for)
            container.state.status = RESTARTING
            self.save(container)
            live.restart_task = asyncio.get_running_loop().create_task(
                self._restart_later(container, delay))
        elif container.host_config.get("AutoRemove"):
            try:
                await self.container_delete(container.id, force=True, volumes=True)
            except errdefs.SampanError:
                log.exception("auto-removing %s", container.id)

    async def _released(self, container_id: str, *, runtime: bool = True) -> None:
        """Wait for the unmount (and, with ``runtime``, the runtime's delete) that follow an
        exit, if they are under way."""
        live = self.live(container_id)
        for task in (live.unmounting, live.deleting if runtime else None):
            if task is not None and not task.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)

    async def _release_task(self, container: Container) -> None:
        """Forget the task in the supervisor (runtime delete) and unmount the root, both at
        once (independent: the container's processes are gone; the runtime delete is a
        process start, the unmount a syscall in a worker thread)."""
        await asyncio.gather(self._delete_runtime_task(container.id),
                             self._unmount_root(container.id))

    async def _delete_runtime_task(self, container_id: str) -> None:
        started = time.perf_counter()
        with contextlib.suppress(errdefs.SampanError):
            await self._supervisor.delete(container_id)
        log.debug("runtime delete of %s took %.1f ms", container_id[:12],
                  (time.perf_counter() - started) * 1000)

    async def _unmount_root(self, container_id: str) -> None:
        try:
            await asyncio.to_thread(self._mounter.unmount, self._paths.rootfs(container_id))
        except OSError:
            log.exception("unmounting the root of %s", container_id)
        container = self._containers.get(container_id)
        if self._volumes is not None and container is not None:
            await self._volumes.release_mounts(container)
        await self._release_network(container_id)

    async def _release_network(self, container_id: str) -> None:
        if self._networking is None:
            return
        try:
            await self._networking.teardown(container_id)
        except (OSError, errdefs.SampanError):
            log.exception("releasing the network of %s", container_id)

    async def _finish_removal(self, container_id: str, deleting: asyncio.Task[None] | None,
                              ) -> None:
        """After a container's record is gone: the runtime's delete of its task (it writes
        its log in the bundle), then the bundle directory. A crash before the end leaves a
        task of no container: ``_reconcile`` deletes it and its bundle."""
        if deleting is not None:
            with contextlib.suppress(Exception):
                await deleting
        await self._delete_runtime_task(container_id)
        await asyncio.to_thread(shutil.rmtree, self._paths.bundle(container_id), True)

    async def finish_background(self, timeout: float = 10) -> None:
        """Let the removals still under way finish (daemon shutdown)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _restart_later(self, container: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        live = self.live(container.id)
        async with live.lock:
            live.restart_task = None
            if container.state.status != RESTARTING or container.id not in self._containers:
                return
            container.restart_count += 1
            try:
                await self._start_locked(container)
            except errdefs.SampanError:
                log.exception("restarting %s", container.id)

    # ------------------------------------------------------------------ stop, kill

    async def container_stop(self, ref: str, *, timeout: int | None, signal: str | None) -> None:
        container = self.get(ref)
        lifecycle.check_stop(container)
        container.manually_stopped = True
        if container.state.status == RESTARTING and await self._cancel_restart(container):
            return
        self.save(container)
        stop_signal = parse_signal(signal or container.config.get("StopSignal"),
                                   default=_signal.SIGTERM)
        if timeout is None:
            timeout = container.config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
        await self._stop(container, stop_signal, timeout)
        self.publish(container, "stop")

    async def _cancel_restart(self, container: Container) -> bool:
        """Drop a pending restart. False when it had already begun (under the lock, which
        this waits for): the container runs again and must be stopped as usual."""
        live = self.live(container.id)
        async with live.lock:
            if container.state.status != RESTARTING:
                return False
            if live.restart_task is not None:
                live.restart_task.cancel()
                live.restart_task = None
            container.state.status = EXITED
            self.save(container)
            return True

    async def _stop(self, container: Container, stop_signal: int, timeout: int) -> None:
        if container.state.status not in (RUNNING, PAUSED):
            return
        exited = self._exit_future(container)
        with contextlib.suppress(errdefs.NotFound, errdefs.Conflict):
            await self._signal(container, stop_signal)
        if timeout < 0:
            await asyncio.shield(exited)
            return
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
            return
        except TimeoutError:
            pass
        with contextlib.suppress(errdefs.NotFound, errdefs.Conflict):
            await self._signal(container, _signal.SIGKILL)
        await asyncio.shield(exited)

    def _exit_future(self, container: Container) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.live(container.id).exit_waiters.append(future)
        return future

    async def _signal(self, container: Container, number: int) -> None:
        await self._supervisor.kill(container.id, number)
        self.publish(container, "kill", signal=str(number))
        if container.state.status == PAUSED and number == _signal.SIGKILL:
            # A frozen task gets SIGKILL only once thawed (cgroup freezer).
            with contextlib.suppress(errdefs.SampanError):
                await self._supervisor.resume(container.id)

    async def container_kill(self, ref: str, *, signal: str | None) -> None:
        container = self.get(ref)
        number = parse_signal(signal, default=_signal.SIGKILL)
        lifecycle.check_kill(container)
        if number == _signal.SIGKILL:
            container.manually_stopped = True  # Docker: kill -9 counts as a manual stop
            self.save(container)
        await self._signal(container, number)

    async def container_restart(self, ref: str, *, timeout: int | None, signal: str | None) -> None:
        container = self.get(ref)
        if container.state.status in (RUNNING, PAUSED, RESTARTING):
            await self.container_stop(ref, timeout=timeout, signal=signal)
        live = self.live(container.id)
        async with live.lock:
            container.manually_stopped = False
            if container.state.status not in (RUNNING, PAUSED):
                await self._start_locked(container)
        self.publish(container, "restart")

    # ------------------------------------------------------------------ pause, update, rename

    async def container_pause(self, ref: str) -> None:
        container = self.get(ref)
        async with self.live(container.id).lock:
            lifecycle.check_pause(container)
            await self._supervisor.pause(container.id)
            container.state.status = PAUSED
            self.save(container)
        self.publish(container, "pause")

    async def container_unpause(self, ref: str) -> None:
        container = self.get(ref)
        async with self.live(container.id).lock:
            lifecycle.check_unpause(container)
            await self._supervisor.resume(container.id)
            container.state.status = RUNNING
            self.save(container)
        self.publish(container, "unpause")

    async def container_update(self, ref: str, update: dict[str, Any]) -> dict[str, Any]:
        container = self.get(ref)
        resources = {k: v for k, v in update.items() if k != "RestartPolicy"}
        new_hc = {**container.host_config, **{k: v for k, v in resources.items()
                                                if v is not None}}
        if "RestartPolicy" in update and update["RestartPolicy"] is not None:
            new_hc["RestartPolicy"] = update["RestartPolicy"]
        if new_hc.get("AutoRemove") and (new_hc.get("RestartPolicy") or {}).get(
                "Name", "no") not in ("", "no"):
            raise errdefs.InvalidParameter(
                "Restart policy cannot be updated because AutoRemove is enabled for the "
                "container")
        # Memory given alone keeps its old swap ratio meaningless: Docker sets swap = 2x.
        if resources.get("Memory") and not resources.get("MemorySwap"):
            old_swap = container.host_config.get("MemorySwap") or 0
            if old_swap > 0 and old_swap < resources["Memory"]:
                new_hc["MemorySwap"] = -1
        checked = check_host_config(new_hc, self._runtimes, self._default_runtime)
        async with self.live(container.id).lock:
            if container.state.status in (RUNNING, PAUSED) and resources:
                await self._supervisor.update(container.id, oci_resources(checked))
            container.host_config = checked
            self.save(container)
        self.publish(container, "update")
        return {"Warnings": []}

    async def container_rename(self, ref: str, *, name: str) -> None:
        container = self.get(ref)
        new_name = normalize_name(name)
        if new_name == container.name:
            raise errdefs.InvalidParameter(
                "Renaming a container with the same name as its current name")
        existing = next((c for c in self._containers.values() if c.name == new_name), None)
        if existing is not None:
            raise errdefs.Conflict(
                f'Conflict. The container name "{new_name}" is already in use by container '
                f'"{existing.id}". You have to remove (or rename) that container to be able '
                "to reuse that name.")
        old = container.name
        container.name = new_name
        try:
            self.save(container)
        except BaseException:
            container.name = old
            raise
        self.publish(container, "rename", oldName=old)

    # ------------------------------------------------------------------ wait

    async def container_wait(self, ref: str, *, condition: str) -> Awaitable[dict[str, Any]]:
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise errdefs.InvalidParameter(f"invalid condition: \"{condition}\"")
        container = self.get(ref)
        live = self.live(container.id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if condition == "removed":
            live.removal_waiters.append(future)
        elif condition == "next-exit" or container.state.status in (RUNNING, PAUSED,
                                                                    RESTARTING):
            live.exit_waiters.append(future)
        else:
            future.set_result({"StatusCode": container.state.exit_code, "Error": None})
        return future

    # ------------------------------------------------------------------ remove, prune

    async def container_delete(self, ref: str, *, force: bool, volumes: bool,
                               link: bool = False) -> None:
        container = self.get(ref)
        live = self.live(container.id)
        lifecycle.check_remove(container, force)
        if container.state.status == RESTARTING:
            await self._cancel_restart(container)
        if container.state.status in (RUNNING, PAUSED):
            container.manually_stopped = True
            await self._stop(container, _signal.SIGKILL, -1)
        async with live.lock:
            if container.id not in self._containers:
                return
            container.state.status = REMOVING
            self.save(container)
            await self._released(container.id, runtime=False)
            await self._unmount_root(container.id)
            await asyncio.gather(
                self._remove_rw(container.id),
                asyncio.to_thread(shutil.rmtree, self._paths.container_dir(container.id), True))
            self._store.delete(container.id)
            if self._networking is not None:
                self._networking.forget(container.id)
            del self._containers[container.id]
            if self._volumes is not None:
                await self._volumes.remove_mounts(container, volumes)
            self._in_background(self._finish_removal(container.id, live.deleting))
        self._live.pop(container.id, None)
        for attacher, _, _ in live.pending_attach:
            attacher.end()
        self.publish(container, "destroy")
        result = {"StatusCode": container.state.exit_code, "Error": None}
        for waiter in [*live.removal_waiters, *live.exit_waiters]:
            if not waiter.done():
                waiter.set_result(result)

    async def _remove_rw(self, container_id: str) -> None:
        with contextlib.suppress(errdefs.NotFound):
            await asyncio.to_thread(self._layers.remove_rw, container_id)

    async def containers_prune(self, *, filters: dict[str, list[str]]) -> dict[str, Any]:
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        until_ns = 0
        for value in filters.get("until", []):
            until_ns = _until_ns(value)
        deleted: list[str] = []
        reclaimed = 0
        for container in list(self._containers.values()):
            if container.state.status not in (CREATED, EXITED):
                continue
            labels = container.config.get("Labels") or {}
            if until_ns and container.created >= until_ns:
                continue
            if not _labels_match(labels, filters.get("label", []), positive=True):
                continue
            if not _labels_match(labels, filters.get("label!", []), positive=False):
                continue
            with contextlib.suppress(errdefs.NotFound):
                reclaimed += await asyncio.to_thread(self._layers.rw_size, container.id)
            try:
                await self.container_delete(container.id, force=False, volumes=False)
            except errdefs.SampanError:
                continue
            deleted.append(container.id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ------------------------------------------------------------------ inspect, list

    async def _sizes(self, container: Container) -> tuple[int, int]:
        try:
            rw = await asyncio.to_thread(self._layers.rw_size, container.id)
        except errdefs.NotFound:
            rw = 0
        try:  # SizeRootFs: the whole filesystem, the image's layers under the rw layer
            image = await asyncio.to_thread(self._images.inspect, container.image_id)
        except errdefs.NotFound:
            image = {}
        return rw, rw + int(image.get("Size") or 0)

    async def container_inspect(self, ref: str, *, size: bool) -> dict[str, Any]:
        container = self.get(ref)
        sizes = await self._sizes(container) if size else None
        result = inspect_json(container, self._paths.container_files(container.id),
                              list(self.live(container.id).exec_ids), {}, sizes)
        if self._networking is not None:
            result["NetworkSettings"] = self._networking.settings(container)
        return result

    async def containers_list(self, *, all: bool, limit: int | None, size: bool,
                   filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        if limit is not None and limit < 0:
            raise errdefs.InvalidParameter(f"invalid limit: {limit}")
        keep = matcher(filters, self.get, self._image_matches)
        show_all = all or bool(limit) or needs_all(filters) or bool(
            filters.get("before") or filters.get("since"))
        chosen = [c for c in sorted(self._containers.values(), key=lambda c: -c.created)
                  if (show_all or c.state.status in (RUNNING, PAUSED, RESTARTING)) and keep(c)]
        if limit:
            chosen = chosen[:limit]
        now = time.time_ns()
        result = []
        for container in chosen:
            sizes = await self._sizes(container) if size else None
            summary = summary_json(container, now, sizes)
            if self._networking is not None:
                summary["Ports"], summary["NetworkSettings"]["Networks"] = (
                    self._networking.summary(container))
            result.append(summary)
        return result

    def _image_matches(self, container: Container, ref: str) -> bool:
        if container.image == ref or container.image_id == ref:
            return True
        try:
            return self._images.resolve(ref) == container.image_id
        except errdefs.SampanError:
            return False

    # ------------------------------------------------------------------ logs, attach

    async def read_logs(self, ref: str, *, follow: bool, stdout: bool, stderr: bool,
                   since: float, until: float, timestamps: bool,
                   tail: int | None) -> tuple[bool, AsyncIterator[tuple[int, bytes]]]:
        container = self.get(ref)
        if not (stdout or stderr):
            raise errdefs.InvalidParameter("you must choose at least one stream")
        if container.host_config.get("LogConfig", {}).get("Type") == "none":
            raise errdefs.NotImplementedFeature(
                "configured logging driver does not support reading")
        if tail is not None and tail < 0:
            tail = None
        # Float seconds cannot carry nanoseconds (the CLI sends ``since=<s>.<ns>`` copied
        # from ``logs -t``; a double holds today's epoch seconds to about 0.12 us): widen
        # both bounds by a microsecond past that error so they stay inclusive.
        query = LogQuery(stdout=stdout, stderr=stderr,
                         since_ns=(math.floor(since * 1e6) - 1) * 1000 if since else 0,
                         until_ns=(math.ceil(until * 1e6) + 1) * 1000 if until else 0,
                         timestamps=timestamps, tail=tail)
        path = self._paths.log_path(container.id)
        container_id = container.id

        async def entries() -> AsyncIterator[tuple[int, bytes]]:
            records, position = await asyncio.to_thread(read_existing, path, query)
            for record in records:
                yield query.entry(record)
            if not follow or (until and until * 1e9 < time.time_ns()):
                return
            async for record in follow_log(path, query, lambda: self.is_running(container_id),
                                           position):
                yield query.entry(record)

        return container.tty, entries()

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool,
                               logs: bool, stream: bool) -> ProcessAttach:
        container = self.get(ref)
        lifecycle.check_attach(container)
        if container.state.status == REMOVING:
            raise errdefs.Conflict(f"container {container.id} is being removed")
        replay: list[tuple[int, bytes]] = []
        if logs and container.host_config.get("LogConfig", {}).get("Type") != "none":
            query = LogQuery(stdout=stdout, stderr=stderr)
            records, _ = await asyncio.to_thread(
                read_existing, self._paths.log_path(container.id), query)
            replay = [query.entry(r) for r in records]
        want_stdin = stdin and bool(container.config.get("OpenStdin"))
        attacher = ProcessAttach(tty=container.tty, want_stdin=want_stdin,
                                 stdin_once=bool(container.config.get("StdinOnce")),
                                 replay=replay)
        live = self.live(container.id)
        if not stream:
            attacher.end()
        elif container.state.status in (RUNNING, PAUSED):
            try:
                reader, writer = await self._supervisor.attach(
                    container.id, stdin=want_stdin, stdout=stdout, stderr=stderr,
                    keep_stdin=attacher.keeps_stdin)
            except errdefs.NotFound:
                attacher.end()
            else:
                attacher.connect(reader, writer)
        elif container.state.status in (CREATED, EXITED, RESTARTING):
            live.pending_attach.append((attacher, stdout, stderr))
        else:
            attacher.end()
        self.publish(container, "attach")
        return attacher

    async def container_resize(self, ref: str, *, height: int, width: int) -> None:
        container = self.get(ref)
        if container.state.status not in (RUNNING, PAUSED):
            raise errdefs.Conflict(f"container {container.id} is not running")
        if height < 0 or width < 0:
            raise errdefs.InvalidParameter("invalid terminal size")
        await self._supervisor.resize(container.id, height, width)

    # ------------------------------------------------------------------ top, stats, files

    async def container_top(self, ref: str, *, ps_args: str) -> dict[str, Any]:
        container = self.get(ref)
        if container.state.status not in (RUNNING, PAUSED):
            raise errdefs.Conflict(f"container {container.id} is not running")
        pids = set(await self._supervisor.pids(container.id))
        args = shlex.split(ps_args or "-ef")
        process = await asyncio.create_subprocess_exec(
            "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        if process.returncode != 0:
            raise errdefs.InvalidParameter(
                f"ps: {err.decode(errors='replace').strip() or 'failed'}")
        self.publish(container, "top")
        return filter_ps_output(out.decode(errors="replace"), pids)

    async def container_stats(self, ref: str, *, stream: bool,
                              one_shot: bool) -> AsyncIterator[dict[str, Any]]:
        container = self.get(ref)

        def sample() -> dict[str, Any]:
            pid = container.state.pid if container.state.status in (RUNNING, PAUSED) else 0
            return self._cgroups.sample(pid, time.time_ns())

        async def samples() -> AsyncIterator[dict[str, Any]]:
            previous = None
            if not stream and not one_shot:
                previous = await asyncio.to_thread(sample)
                await asyncio.sleep(1)
            while True:
                current = await asyncio.to_thread(sample)
                yield stats_json(current, previous, container.name, container.id)
                if not stream or container.id not in self._containers:
                    return
                previous = current
                await asyncio.sleep(1)

        return samples()

    async def container_changes(self, ref: str) -> list[dict[str, Any]]:
        container = self.get(ref)
        changes = await asyncio.to_thread(self._layers.changes, container.id)
        return [{"Path": change.path, "Kind": change.kind} for change in changes]

    async def container_export(self, ref: str) -> AsyncIterator[bytes]:
        container = self.get(ref)
        if container.state.status == REMOVING:
            raise errdefs.Conflict(f"container {container.id} is being removed")
        tar = await asyncio.to_thread(self._layers.export_rw, container.id)
        self.publish(container, "export")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(tar.read, 1 << 20)
                    if not chunk:
                        return
                    yield chunk
            finally:
                tar.close()

        return chunks()

    # ------------------------------------------------------------------ restore

    async def restore(self) -> None:
        """Live restore: load ``state.db`` and reconcile it with the supervisor's tasks."""
        for container in self._store.load_all():
            self._containers[container.id] = container
        await self._reconcile(await self._supervisor.list())

    async def _reconcile(self, task_list: list[dict[str, Any]]) -> None:
        tasks = {t["id"]: t for t in task_list}
        for task_id in set(tasks) - set(self._containers):
            # A task whose container is gone (sampand died while removing it): forget it.
            await self._discard_task(task_id)
            await asyncio.to_thread(shutil.rmtree, self._paths.bundle(task_id), True)
        for container in list(self._containers.values()):
            status = container.state.status
            if status == REMOVING:
                with contextlib.suppress(errdefs.SampanError):
                    await self.container_delete(container.id, force=True, volumes=False)
                continue
            task = tasks.get(container.id)
            task_status = (task or {}).get("status", "")
            busy = self.live(container.id).lock.locked()  # a start in flight (reconnect)
            if status in (CREATED, EXITED):
                if task is not None and not busy:
                    # sampand died after the runtime's create but before it recorded the
                    # start (or after an exit, before the task was deleted): undo the task.
                    log.info("discarding the leftover task of %s", container.id)
                    await self._discard_task(container.id)
                continue
            if status not in (RUNNING, PAUSED, RESTARTING):
                continue
            if task is not None and task_status == "created" and status == RUNNING and not busy:
                # sampand died between the runtime's create and start: finish the start.
                try:
                    await self._supervisor.start(container.id)
                except errdefs.SampanError as exc:
                    log.warning("resuming the start of %s failed: %s", container.id, exc)
                    await self._discard_task(container.id)
                    await self.handle_exit(container, UNKNOWN_EXIT_CODE, time.time_ns(), False)
                    continue
                self.publish(container, "start")
                task_status = "running"
            if task is not None and task_status in ("running", "paused", "created"):
                container.state.pid = int(task.get("pid") or container.state.pid)
                container.state.status = PAUSED if task_status == "paused" else RUNNING
                self.save(container)
                if self.on_started is not None:
                    self.on_started(container)
                continue
            if status == RESTARTING:
                live = self.live(container.id)
                if live.restart_task is None:  # the daemon died while it waited: go on
                    live.restart_task = asyncio.get_running_loop().create_task(
                        self._restart_later(container, live.backoff.next_delay(0.0)))
                continue
            if task is not None:
                await self.handle_exit(container, int(task.get("exit_code") or 0),
                                       _event_time(task), bool(task.get("oom_killed")))
            else:
                await self.handle_exit(container, UNKNOWN_EXIT_CODE, time.time_ns(), False)

    async def _discard_task(self, container_id: str) -> None:
        with contextlib.suppress(errdefs.SampanError):
            await self._supervisor.delete(container_id, force=True)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._mounter.unmount, self._paths.rootfs(container_id))

    async def start_restart_policy_containers(self) -> None:
        for container in list(self._containers.values()):
            if container.state.status in (RUNNING, PAUSED, RESTARTING):
                continue
            policy = container.host_config.get("RestartPolicy") or {}
            if container.state.started_at and start_on_daemon_start(
                    policy, container.manually_stopped):
                try:
                    await self.container_start(container.id)
                except errdefs.SampanError:
                    log.exception("starting %s (restart policy)", container.id)


def oci_resources(hc: dict[str, Any]) -> dict[str, Any]:
    """HostConfig resources as OCI ``linux.resources`` (what ``runtime update`` takes)."""
    memory: dict[str, Any] = {}
    if hc.get("Memory"):
        memory["limit"] = hc["Memory"]
    if hc.get("MemoryReservation"):
        memory["reservation"] = hc["MemoryReservation"]
    if hc.get("MemorySwap"):
        memory["swap"] = hc["MemorySwap"]
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = hc["CpuShares"]
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = hc["NanoCpus"] * 100000 // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = hc["CpuQuota"]
    if hc.get("CpuPeriod"):
        cpu["period"] = hc["CpuPeriod"]
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    resources: dict[str, Any] = {}
    if memory:
        resources["memory"] = memory
    if cpu:
        resources["cpu"] = cpu
    if hc.get("PidsLimit"):
        resources["pids"] = {"limit": hc["PidsLimit"]}
    if hc.get("BlkioWeight"):
        resources["blockIO"] = {"weight": hc["BlkioWeight"]}
    return resources


def _write_json(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        json.dump(data, handle)
    os.rename(temp, path)


def _event_time(event: dict[str, Any]) -> int:
    value = event.get("exited_at")
    if isinstance(value, str) and value:
        with contextlib.suppress(errdefs.InvalidParameter):
            return parse_rfc3339(value)
    if isinstance(value, (int, float)) and value > 0:
        return int(value * 1e9) if value < 1e12 else int(value)
    return time.time_ns()


def _until_ns(value: str) -> int:
    return parse_api_timestamp(value)


def _labels_match(labels: dict[str, str], wanted: list[str], positive: bool) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        present = key in labels and (not sep or labels[key] == value)
        if present != positive:
            return False
    return True


