"""``ArchiveService``: ``docker cp`` in and out of containers, running or not.

Where the container's files are:

- a running (or paused) container: ``/proc/<pid>/root``, the root of its own mount
  namespace: its volumes, bind mounts and tmpfs mounts are all in place, and a read-only
  mount refuses writes by itself;
- a created or exited container: its root filesystem is mounted (as for a start) at the
  bundle's ``rootfs``, with its volumes and bind mounts bound on top (destinations resolved
  inside that root), for the time of the copy, under the container's lock (no start
  meanwhile); then all of it is lazily unmounted.

Path rules are Docker's (daemon/archive.go): the stat and ``GET`` resolve every component
but the last (``/link`` is the link, ``/link/`` its target); ``PUT`` resolves the last one
too and wants a directory; symlinks resolve inside the container's root (``scoped_path``).
The archive is named after what was asked for (``/a/b`` -> entries ``b``, ``b/...``;
``/a/.`` -> ``.``...), as Docker's rebase.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat as stat_module
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import IO, Any, Protocol

from sampan import errdefs
from sampan.daemon import scoped_path
from sampan.daemon.archive_tar import ExtractOptions, extract_archive, write_archive
from sampan.daemon.model import PAUSED, RUNNING, Container
from sampan.daemon.mounts import BIND, TMPFS, MountPoint
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.rootfs import MountSpec, RootfsMounter
from sampan.daemon.timefmt import rfc3339_nano
from sampan.supervisor.bundle import resolve_user
from sampan.supervisor.defaults import ETC_FILES

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
SPOOL_IN_MEMORY = 8 * 1024 * 1024

# Go's os.FileMode type bits (io/fs), which the CLI decodes
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """``st_mode`` -> Go ``os.FileMode`` (what ``os.Lstat(...).Mode()`` returns)."""
    mode = st_mode & 0o777
    kind = stat_module.S_IFMT(st_mode)
    mode |= {stat_module.S_IFDIR: GO_MODE_DIR, stat_module.S_IFLNK: GO_MODE_SYMLINK,
             stat_module.S_IFBLK: GO_MODE_DEVICE,
             stat_module.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE,
             stat_module.S_IFIFO: GO_MODE_NAMED_PIPE,
             stat_module.S_IFSOCK: GO_MODE_SOCKET}.get(kind, 0)
    if st_mode & stat_module.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat_module.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat_module.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


def requested_name(path: str) -> str:
    """Go's ``filepath.Base`` of the requested path: trailing slashes ignored, ``/a/.``
    is ``.``, the root is ``/``."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def follows_last(path: str) -> bool:
    """``/link/`` and ``/link/.`` name the link's target, ``/link`` the link."""
    return path.endswith("/") or path.endswith("/.") or path in (".", "")


class ContainerAccess(Protocol):
    def get(self, ref: str) -> Container: ...
    def lock_of(self, container_id: str) -> asyncio.Lock: ...
    async def wait_released(self, container_id: str) -> None: ...
    def publish(self, container: Container, action: str, **extra: str) -> None: ...


class LayerMounts(Protocol):
    def rw_mounts(self, container_id: str) -> list[Any]: ...


class VolumeMounts(Protocol):
    async def setup_mounts(self, container: Container, rootfs: str) -> None: ...
    async def release_mounts(self, container: Container) -> None: ...


class MountCalls(Protocol):
    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None: ...
    def umount(self, target: str, flags: int = 0) -> None: ...


class ArchiveService:
    def __init__(self, *, paths: DaemonPaths, containers: ContainerAccess,
                 layers: LayerMounts, mounter: RootfsMounter, volumes: VolumeMounts,
                 calls: MountCalls) -> None:
        self._paths = paths
        self._containers = containers
        self._layers = layers
        self._mounter = mounter
        self._volumes = volumes
        self._calls = calls

    # ------------------------------------------------------------------ the root

    @contextlib.asynccontextmanager
    async def _root(self, container: Container) -> AsyncIterator[int]:
        """A directory fd of the container's root as its processes see it."""
        if container.state.status in (RUNNING, PAUSED) and container.state.pid:
            try:
                fd = os.open(f"/proc/{container.state.pid}/root", os.O_RDONLY
                             | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    yield fd
                finally:
                    os.close(fd)
                return
        async with self._containers.lock_of(container.id):
            await self._containers.wait_released(container.id)
            rootfs = self._paths.rootfs(container.id)
            specs: Sequence[MountSpec] = await asyncio.to_thread(
                self._layers.rw_mounts, container.id)
            await asyncio.to_thread(self._mounter.mount, specs, rootfs)
            try:
                await self._volumes.setup_mounts(container, rootfs)
                fd = await asyncio.to_thread(self._bind_mount_points, container, rootfs)
                try:
                    yield fd
                finally:
                    os.close(fd)
            finally:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self._mounter.unmount, rootfs)
                await self._volumes.release_mounts(container)

    def _bind_mount_points(self, container: Container, rootfs: str) -> int:
        root_fd = os.open(rootfs, scoped_path.DIR_FLAGS)
        # the binds below must not propagate to the volumes' own mounts (or back)
        self._calls.mount("", rootfs, "", MS_PRIVATE | MS_REC, "")
        points = [MountPoint.from_json(p) for p in container.mount_points]
        covered = {p.destination for p in points}
        files_dir = self._paths.container_dir(container.id)
        # /etc/hosts, /etc/hostname, /etc/resolv.conf: the container's own, as when running
        points += [MountPoint(type=BIND, destination=destination,
                              source=os.path.join(files_dir, name))
                   for name, destination in ETC_FILES if destination not in covered]
        points.sort(key=lambda p: len(scoped_path.components(p.destination)))
        for point in points:
            if point.type == TMPFS or not point.source or not os.path.exists(point.source):
                continue
            resolved = scoped_path.resolve(root_fd, point.destination)
            parts = scoped_path.components(resolved)
            if os.path.isdir(point.source):
                target_fd = scoped_path.make_dirs(root_fd, parts)
            else:
                parent_fd = scoped_path.make_dirs(root_fd, parts[:-1])
                try:
                    target_fd = os.open(parts[-1], os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW
                                        | os.O_CLOEXEC, 0o644, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
            try:
                # mount onto the fd's /proc link: the target we resolved, not a path the
                # kernel would walk again
                target = f"/proc/self/fd/{target_fd}"
                self._calls.mount(point.source, target, "bind", MS_BIND | MS_REC, "")
                if not point.rw:
                    self._calls.mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY, "")
            finally:
                os.close(target_fd)
        return root_fd

    # ------------------------------------------------------------------ stat and GET

    def _stat(self, root_fd: int, path: str, container: Container
              ) -> tuple[dict[str, Any], str]:
        resolved = scoped_path.resolve(root_fd, path, follow_last=follows_last(path))
        parent_fd, base = scoped_path.open_parent(root_fd, resolved)
        try:
            info = os.lstat(base, dir_fd=parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            raise errdefs.NotFound(
                f"Could not find the file {path} in container {container.name.lstrip('/')}"
            ) from None
        finally:
            os.close(parent_fd)
        link_target = ""
        if stat_module.S_ISLNK(info.st_mode):
            link_target = scoped_path.resolve(root_fd, path, follow_last=True)
        return {"name": requested_name(path), "size": info.st_size,
                "mode": go_file_mode(info.st_mode), "mtime": rfc3339_nano(info.st_mtime_ns),
                "linkTarget": link_target}, resolved

    async def container_archive_stat(self, id: str, path: str) -> dict[str, Any]:
        container = self._containers.get(id)
        async with self._root(container) as root_fd:
            stat, _ = await asyncio.to_thread(self._stat, root_fd, path, container)
        return stat

    async def container_archive_get(self, id: str, path: str
                                    ) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        container = self._containers.get(id)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            async with self._root(container) as root_fd:
                stat, resolved = await asyncio.to_thread(self._stat, root_fd, path, container)
                name = requested_name(path)
                if name == "/":
                    name = "."
                await asyncio.to_thread(write_archive, root_fd, resolved, name, spool)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        self._containers.publish(container, "archive-path", path=path)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(spool.read, 1 << 20)
                    if not chunk:
                        return
                    yield chunk
            finally:
                spool.close()

        return stat, chunks()

    # ------------------------------------------------------------------ PUT

    async def container_archive_put(self, id: str, path: str, body: AsyncIterator[bytes], *,
                                    no_overwrite_dir_non_dir: bool,
                                    copy_uid_gid: bool) -> None:
        container = self._containers.get(id)
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            async for chunk in body:
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
            async with self._root(container) as root_fd:
                await asyncio.to_thread(self._extract, root_fd, container, path, spool,
                                        no_overwrite_dir_non_dir, copy_uid_gid)
        finally:
            spool.close()
        self._containers.publish(container, "extract-to-dir", path=path)

    def _extract(self, root_fd: int, container: Container, path: str, source: IO[bytes],
                 no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
        resolved = scoped_path.resolve(root_fd, path, follow_last=True)
        parent_fd, base = scoped_path.open_parent(root_fd, resolved)
        try:
            info = os.lstat(base, dir_fd=parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            raise errdefs.NotFound(
                f"Could not find the file {path} in container {container.name.lstrip('/')}"
            ) from None
        finally:
            os.close(parent_fd)
        if not stat_module.S_ISDIR(info.st_mode):
            raise errdefs.InvalidParameter("extraction point is not a directory")
        self._check_writable(container, resolved)
        owner = None
        if copy_uid_gid:
            user = resolve_user(str(container.config.get("User") or ""),
                                _read_in_root(root_fd, "/etc/passwd"),
                                _read_in_root(root_fd, "/etc/group"))
            owner = (int(user["uid"]), int(user["gid"]))
        extract_archive(root_fd, resolved, source,
                        ExtractOptions(no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                       owner=owner))

    @staticmethod
    def _check_writable(container: Container, resolved: str) -> None:
        """Docker's rule: into a volume it must be read-write; elsewhere the root must not
        be read-only."""
        best: MountPoint | None = None
        for data in container.mount_points:
            point = MountPoint.from_json(data)
            prefix = point.destination.rstrip("/") + "/"
            if (resolved == point.destination or resolved.startswith(prefix)) and (
                    best is None or len(point.destination) > len(best.destination)):
                best = point
        if best is not None:
            if not best.rw:
                raise errdefs.Forbidden("mounted volume is marked read-only")
        elif container.host_config.get("ReadonlyRootfs"):
            raise errdefs.Forbidden("container rootfs is marked read-only")


def _read_in_root(root_fd: int, path: str) -> str | None:
    try:
        resolved = scoped_path.resolve(root_fd, path)
        parent_fd, base = scoped_path.open_parent(root_fd, resolved)
        try:
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read(1 << 20)
    except OSError:
        return None
