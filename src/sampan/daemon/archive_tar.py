"""Tar in and out of a container's root for ``docker cp`` (blocking; run in a thread).

Both directions work on directory file descriptors under the container's root fd (see
``scoped_path``): reading never follows a symlink (it is archived as a symlink), and
writing creates each entry relative to its parent's fd with ``O_NOFOLLOW``/``O_EXCL``,
the parent found by resolving the entry's directory *inside the container* (a symlink in
the container that points at ``/etc`` sends the entry to the container's ``/etc``, never
the host's: Docker extracts inside a chroot for the same reason).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from sampan import errdefs
from sampan.daemon import scoped_path

_CHUNK = 1 << 20
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


# ---------------------------------------------------------------------- out of the container

def _tarinfo(name: str, info: os.stat_result, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mode = stat.S_IMODE(info.st_mode)
    member.uid, member.gid = info.st_uid, info.st_gid
    member.mtime = int(info.st_mtime)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        member.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        member.type, member.linkname = tarfile.SYMTYPE, link
    elif stat.S_ISREG(mode):
        member.type, member.size = tarfile.REGTYPE, info.st_size
    elif stat.S_ISFIFO(mode):
        member.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        member.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        member.devmajor, member.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    else:
        raise ValueError("socket")
    return member


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.inodes: dict[tuple[int, int], str] = {}

    def entry(self, dir_fd: int, base: str, name: str) -> None:
        """Archive ``base`` (in ``dir_fd``) as ``name``, recursing into directories."""
        try:
            info = os.lstat(base, dir_fd=dir_fd)
        except FileNotFoundError:
            return  # gone meanwhile
        link = os.readlink(base, dir_fd=dir_fd) if stat.S_ISLNK(info.st_mode) else ""
        try:
            member = _tarinfo(name, info, link)
        except ValueError:
            return  # sockets are not archived (as Docker)
        if member.isreg() and info.st_nlink > 1:
            key = (info.st_dev, info.st_ino)
            if key in self.inodes:
                member.type, member.linkname, member.size = tarfile.LNKTYPE, self.inodes[key], 0
                self.tar.addfile(member)
                return
            self.inodes[key] = name
        if member.isreg():
            fd = os.open(base, _FILE_FLAGS, dir_fd=dir_fd)
            try:
                with os.fdopen(os.dup(fd), "rb") as data:
                    self.tar.addfile(member, data)
            finally:
                os.close(fd)
            return
        if member.isdir():
            member.name = name.rstrip("/") + "/"
            self.tar.addfile(member)
            child_fd = os.open(base, scoped_path.DIR_FLAGS, dir_fd=dir_fd)
            try:
                for child in sorted(os.listdir(child_fd)):
                    self.entry(child_fd, child, f"{name.rstrip('/')}/{child}")
            finally:
                os.close(child_fd)
            return
        self.tar.addfile(member)

    def close(self) -> None:
        self.tar.close()


def write_archive(root_fd: int, resolved: str, name: str, out: IO[bytes]) -> None:
    """A tar of the resolved container path ``resolved`` whose entries start with ``name``
    (Docker's rebase: the archive is named after what the client asked for)."""
    parent_fd, base = scoped_path.open_parent(root_fd, resolved)
    writer = _Writer(out)
    try:
        writer.entry(parent_fd, base, name)
    finally:
        os.close(parent_fd)
        writer.close()


# ---------------------------------------------------------------------- into the container

@dataclass(frozen=True)
class ExtractOptions:
    no_overwrite_dir_non_dir: bool = False
    owner: tuple[int, int] | None = None  # copyUIDGID: every entry owned by the container user


def _remove(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    fd = os.open(name, scoped_path.DIR_FLAGS, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            _remove(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


class _Extractor:
    def __init__(self, root_fd: int, destination: str, options: ExtractOptions) -> None:
        self.root_fd = root_fd
        self.destination = scoped_path.components(destination)
        self.options = options
        self.dir_times: list[tuple[str, int]] = []

    def _parent(self, parts: list[str]) -> int:
        """The fd of an entry's directory: resolved inside the container, made if missing."""
        resolved = scoped_path.resolve(self.root_fd, scoped_path.join(self.destination + parts))
        return scoped_path.make_dirs(self.root_fd, scoped_path.components(resolved))

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise errdefs.InvalidParameter(
                f"invalid tar entry {member.name!r}: path escapes the destination")
        if not parts:  # "./": the destination itself
            return
        pfd = self._parent(parts[:-1])
        try:
            self._entry(tar, member, pfd, parts)
        finally:
            os.close(pfd)

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, pfd: int,
               parts: list[str]) -> None:
        base = parts[-1]
        try:
            existing: os.stat_result | None = os.lstat(base, dir_fd=pfd)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.options.no_overwrite_dir_non_dir:
                path = scoped_path.join(self.destination + parts)
                if is_dir and not member.isdir():
                    raise errdefs.InvalidParameter(
                        f'cannot overwrite directory "{path}" with non-directory "{path}"')
                if not is_dir and member.isdir():
                    raise errdefs.InvalidParameter(
                        f'cannot overwrite non-directory "{path}" with directory "{path}"')
            if not (is_dir and member.isdir()):
                _remove(pfd, base)
        if member.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._metadata(pfd, base, member)
            self.dir_times.append((scoped_path.join(self.destination + parts),
                                   int(member.mtime)))
        elif member.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                data = tar.extractfile(member)
                remaining = member.size
                while data is not None and remaining > 0:
                    chunk = data.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise errdefs.InvalidParameter(f"unexpected end of tar in {member.name}")
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    remaining -= len(chunk)
            finally:
                os.close(fd)
            self._metadata(pfd, base, member)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=pfd)
            self._metadata(pfd, base, member)
        elif member.islnk():
            target = [p for p in member.linkname.split("/") if p not in ("", ".")]
            if ".." in target or not target:
                raise errdefs.InvalidParameter(
                    f"invalid hard link {member.name!r} -> {member.linkname!r}")
            tfd = self._parent(target[:-1])
            try:
                os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd,
                        follow_symlinks=False)
            finally:
                os.close(tfd)
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
            self._metadata(pfd, base, member)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=pfd)
            self._metadata(pfd, base, member)

    def _metadata(self, pfd: int, base: str, member: tarfile.TarInfo) -> None:
        uid, gid = self.options.owner or (member.uid, member.gid)
        os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        if not member.issym():
            os.chmod(base, member.mode & 0o7777, dir_fd=pfd)
            ns = int(member.mtime) * 1_000_000_000
            os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        for path, mtime in reversed(self.dir_times):
            with contextlib.suppress(OSError):
                fd = scoped_path.open_dir(self.root_fd, path)
                try:
                    os.utime(fd, ns=(mtime * 1_000_000_000,) * 2)
                finally:
                    os.close(fd)


def extract_archive(root_fd: int, destination: str, source: IO[bytes],
                    options: ExtractOptions,
                    on_error: Callable[[OSError], errdefs.SampanError] | None = None) -> None:
    """Unpack the tar ``source`` into the resolved container directory ``destination``."""
    extractor = _Extractor(root_fd, destination, options)
    try:
        with tarfile.open(fileobj=source, mode="r|*") as tar:
            for member in tar:
                extractor.apply(tar, member)
        extractor.finish()
    except tarfile.TarError as exc:
        raise errdefs.InvalidParameter(f"invalid tar archive: {exc}") from exc
    except OSError as exc:
        if on_error is not None:
            raise on_error(exc) from exc
        if exc.errno == errno.EROFS:
            raise errdefs.Forbidden("container rootfs is marked read-only") from exc
        raise errdefs.System(f"cannot extract archive: {exc}") from exc
