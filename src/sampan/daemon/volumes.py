"""``VolumeService``: the volumes API and the volume side of containers' mount points.

Volumes are the ``local`` driver's (``drivers/volume/local.py``); this service keeps them in
memory, answers the Engine API, and does what containers need:

- at create (:meth:`create_mounts`): turn the request into mount points
  (``daemon/mounts.py``), name and create anonymous volumes, create missing named ones,
  check that ``--mount`` bind sources exist;
- at start (:meth:`setup_mounts`): mount volumes that have a mount (``--opt type=...``),
  make a missing ``-v`` bind source, copy the image's content into an empty volume
  (``copy_data``);
- after an exit (:meth:`release_mounts`): undo volume mounts no running container needs;
- at removal (:meth:`remove_mounts`): with ``rm -v``, remove the container's anonymous
  volumes that no other container uses.

"In use" is computed from the containers' records (``state.db``), not from a counter kept
here, so a restarted sampand knows it without bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from typing import Any, Protocol

from sampan import errdefs
from sampan.daemon import scoped_path
from sampan.daemon.events import EventBus
from sampan.daemon.model import PAUSED, RUNNING, Container
from sampan.daemon.mounts import BIND, VOLUME, MountPoint, mounts_json, plan_mount_points
from sampan.drivers.volume.local import DRIVER_NAME, LocalDriver, VolumeRecord, check_options

log = logging.getLogger("sampand.volumes")

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_LIST_FILTERS = frozenset({"dangling", "name", "label", "driver"})
_PRUNE_FILTERS = frozenset({"label", "label!", "all"})


class ContainerLookup(Protocol):
    def all(self) -> list[Container]: ...
    def get(self, ref: str) -> Container: ...


def _created_at(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def _truthy(value: str) -> bool:
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise errdefs.InvalidParameter(f"invalid filter 'dangling={value}'")


def _labels_match(labels: dict[str, str], wanted: Iterable[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class VolumeService:
    def __init__(self, driver: LocalDriver, events: EventBus) -> None:
        self._driver = driver
        self._events = events
        self._volumes: dict[str, VolumeRecord] = {}
        self._containers: ContainerLookup | None = None
        self._lock = asyncio.Lock()

    def bind_containers(self, containers: ContainerLookup) -> None:
        self._containers = containers

    async def load(self) -> None:
        for record in await asyncio.to_thread(self._driver.load):
            self._volumes[record.name] = record

    # ------------------------------------------------------------------ shapes, lookups

    def _json(self, record: VolumeRecord) -> dict[str, Any]:
        return {
            "CreatedAt": _created_at(record.created_at),
            "Driver": record.driver,
            "Labels": dict(record.labels) or None,
            "Mountpoint": self._driver.data_path(record.name),
            "Name": record.name,
            "Options": dict(record.options) or None,
            "Scope": "local",
        }

    def _get(self, name: str) -> VolumeRecord:
        record = self._volumes.get(name)
        if record is None:
            raise errdefs.NotFound(f"get {name}: no such volume")
        return record

    def users(self, name: str, *, running_only: bool = False,
              except_id: str = "") -> list[str]:
        """IDs of the containers whose mount points name this volume."""
        if self._containers is None:
            return []
        found = []
        for container in self._containers.all():
            if container.id == except_id:
                continue
            if running_only and container.state.status not in (RUNNING, PAUSED):
                continue
            if any(p.get("type") == VOLUME and p.get("name") == name
                   for p in container.mount_points):
                found.append(container.id)
        return found

    def _publish(self, action: str, name: str, **attributes: str) -> None:
        self._events.publish("volume", action, name, {"driver": DRIVER_NAME, **attributes})

    # ------------------------------------------------------------------ API

    async def volumes_list(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        for key in filters:
            if key not in _LIST_FILTERS:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        dangling = [_truthy(v) for v in filters.get("dangling", [])]
        chosen = []
        for record in sorted(self._volumes.values(), key=lambda r: r.name):
            if dangling and (not self.users(record.name)) not in dangling:
                continue
            names = filters.get("name", [])
            if names and not any(n in record.name for n in names):
                continue
            drivers = filters.get("driver", [])
            if drivers and record.driver not in drivers:
                continue
            if not _labels_match(record.labels, filters.get("label", [])):
                continue
            chosen.append(self._json(record))
        return {"Volumes": chosen, "Warnings": None}

    async def volume_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("Name") or "")
        driver = str(body.get("Driver") or DRIVER_NAME)
        options = {str(k): str(v) for k, v in (body.get("DriverOpts") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        record = await self.ensure(name, driver=driver, options=options, labels=labels,
                                   anonymous=not name)
        return self._json(record)

    async def ensure(self, name: str, *, driver: str = DRIVER_NAME,
                     options: dict[str, str] | None = None,
                     labels: dict[str, str] | None = None,
                     anonymous: bool = False) -> VolumeRecord:
        """The volume ``name`` (created when missing; an anonymous one when ``name`` is
        empty)."""
        if driver not in ("", DRIVER_NAME):
            raise errdefs.NotFound(
                f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        options = dict(options or {})
        check_options(options)
        async with self._lock:
            if name and name in self._volumes:
                return self._volumes[name]
            labels = dict(labels or {})
            if anonymous:
                labels.setdefault(ANONYMOUS_LABEL, "")
            record = VolumeRecord(name=name or secrets.token_hex(32),
                                  created_at=time.time_ns(), labels=labels, options=options,
                                  anonymous=anonymous)
            await asyncio.to_thread(self._driver.create, record)
            self._volumes[record.name] = record
        self._publish("create", record.name)
        return record

    async def volume_inspect(self, name: str) -> dict[str, Any]:
        return self._json(self._get(name))

    async def volume_delete(self, name: str, *, force: bool) -> None:
        record = self._volumes.get(name)
        if record is None:
            if force:
                return
            raise errdefs.NotFound(f"get {name}: no such volume")
        users = self.users(name, running_only=force)
        if users:
            raise errdefs.Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        await self._remove(record)

    async def _remove(self, record: VolumeRecord) -> None:
        async with self._lock:
            if self._volumes.pop(record.name, None) is None:
                return
            try:
                await asyncio.to_thread(self._driver.remove, record)
            except OSError as exc:
                self._volumes[record.name] = record
                raise errdefs.System(f"remove {record.name}: {exc}") from exc
        self._publish("destroy", record.name)

    async def volumes_prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        for key in filters:
            if key not in _PRUNE_FILTERS:
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        everything = any(_truthy(v) for v in filters.get("all", []))
        deleted: list[str] = []
        reclaimed = 0
        for record in list(self._volumes.values()):
            if not (everything or record.anonymous):
                continue
            if not _labels_match(record.labels, filters.get("label", [])):
                continue
            unwanted = filters.get("label!", [])
            if unwanted and any(_labels_match(record.labels, [u]) for u in unwanted):
                continue
            if self.users(record.name):
                continue
            size = await asyncio.to_thread(self._driver.size, record.name)
            try:
                await self._remove(record)
            except errdefs.SampanError:
                continue
            deleted.append(record.name)
            reclaimed += max(size, 0)
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def disk_usage(self) -> list[dict[str, Any]]:
        """``Volumes`` of ``GET /system/df``: each volume with ``UsageData``."""
        result = []
        for record in sorted(self._volumes.values(), key=lambda r: r.name):
            entry = self._json(record)
            entry["UsageData"] = {
                "Size": await asyncio.to_thread(self._driver.size, record.name),
                "RefCount": len(self.users(record.name))}
            result.append(entry)
        return result

    # ------------------------------------------------------------------ containers

    def _volumes_from(self, ref: str) -> list[MountPoint]:
        if self._containers is None:
            raise errdefs.NotFound(f"No such container: {ref}")
        source = self._containers.get(ref)
        return [MountPoint.from_json(p) for p in source.mount_points]

    async def create_mounts(self, container_id: str, config: dict[str, Any],
                            host_config: dict[str, Any]) -> list[dict[str, Any]]:
        """The new container's mount points, its volumes created (see the module doc)."""
        points = plan_mount_points(config, host_config, self._volumes_from, os.path.exists)
        created: list[VolumeRecord] = []
        try:
            for point in points:
                if point.type != VOLUME:
                    continue
                existed = bool(point.name) and point.name in self._volumes
                record = await self.ensure(point.name, driver=point.driver,
                                           options=point.volume_options,
                                           labels=point.volume_labels,
                                           anonymous=point.anonymous)
                if not existed:
                    created.append(record)
                point.name = record.name
                point.driver = record.driver
                point.source = self._driver.data_path(record.name)
        except BaseException:
            for record in created:
                if record.anonymous:
                    with contextlib.suppress(errdefs.SampanError):
                        await self._remove(record)
            raise
        return [p.to_json() for p in points]

    async def setup_mounts(self, container: Container, rootfs: str) -> None:
        """Before the runtime creates the container (its root mounted at ``rootfs``)."""
        for data in container.mount_points:
            point = MountPoint.from_json(data)
            if point.type == BIND and point.create_source:
                await asyncio.to_thread(os.makedirs, point.source, 0o755, True)
            elif point.type == BIND and not os.path.exists(point.source):
                raise errdefs.InvalidParameter(
                    f"invalid mount config for type \"bind\": bind source path does not "
                    f"exist: {point.source}")
            if point.type != VOLUME:
                continue
            record = self._volumes.get(point.name)
            if record is None:  # removed while the container was stopped: Docker recreates
                record = await self.ensure(point.name, driver=point.driver)
            path = await asyncio.to_thread(self._driver.mount, record)
            if point.copy_data:
                await copy_up(rootfs, point.destination, path)
            self._publish("mount", record.name, container=container.id,
                          destination=point.destination,
                          **{"read/write": str(point.rw).lower()},
                          propagation=point.propagation)

    async def release_mounts(self, container: Container) -> None:
        """After the container stopped: unmount its volumes' mounts nobody else runs on."""
        for data in container.mount_points:
            if data.get("type") != VOLUME:
                continue
            record = self._volumes.get(str(data.get("name")))
            if record is None:
                continue
            self._publish("unmount", record.name, container=container.id)
            if self.users(record.name, running_only=True, except_id=container.id):
                continue
            try:
                await asyncio.to_thread(self._driver.unmount, record)
            except OSError:
                log.exception("unmounting volume %s", record.name)

    async def remove_mounts(self, container: Container, remove_anonymous: bool) -> None:
        """The container is gone (its record already removed): with ``rm -v``, its
        anonymous volumes that no other container uses go too."""
        if not remove_anonymous:
            return
        for data in container.mount_points:
            record = self._volumes.get(str(data.get("name")))
            if data.get("type") != VOLUME or record is None or not record.anonymous:
                continue
            if self.users(record.name, except_id=container.id):
                continue
            try:
                await self._remove(record)
            except errdefs.SampanError:
                log.exception("removing volume %s", record.name)

    def mounts_json(self, container: Container) -> list[dict[str, Any]]:
        return mounts_json(container.mount_points)


async def copy_up(rootfs: str, destination: str, volume_path: str) -> None:
    """Docker's copy-up: an empty volume gets what the image has at ``destination`` (with
    ownership and modes; the directory's own too). The destination is resolved inside the
    root (an image's symlink cannot make us copy host files)."""
    await asyncio.to_thread(_copy_up, rootfs, destination, volume_path)


def _copy_up(rootfs: str, destination: str, volume_path: str) -> None:
    if os.listdir(volume_path):
        return
    root_fd = os.open(rootfs, scoped_path.DIR_FLAGS)
    try:
        resolved = scoped_path.resolve(root_fd, destination)
        try:
            source_fd = scoped_path.open_dir(root_fd, resolved)
        except (FileNotFoundError, NotADirectoryError, OSError):
            return  # nothing (or no directory) there in the image
    finally:
        os.close(root_fd)
    try:
        # cp -a copies symlinks as symlinks (-P) and keeps owners, modes, times and
        # xattrs; "<dir>/." copies the contents and the directory's own attributes.
        result = _run_cp(source_fd, volume_path)
    finally:
        os.close(source_fd)
    if result:
        raise errdefs.System(f"copying image content into volume {volume_path}: {result}")


def _run_cp(source_fd: int, target: str) -> str:
    import subprocess

    cp = shutil.which("cp") or "/bin/cp"
    done = subprocess.run([cp, "-a", f"/proc/self/fd/{source_fd}/.", target + "/"],
                          pass_fds=(source_fd,), capture_output=True, check=False)
    return done.stderr.decode(errors="replace").strip() if done.returncode else ""
