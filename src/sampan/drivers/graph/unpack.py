"""Safe extraction of one layer tar into a layer directory.

Safety: every entry is written relative to a directory file descriptor. Parent directories are
opened one component at a time with ``O_NOFOLLOW | O_DIRECTORY`` starting from the target's fd,
so no symlink, ``..`` or absolute path can move a write outside the target (the same guarantee
``openat2(RESOLVE_BENEATH)`` gives, spelled out in userspace). Names are cleaned first: a leading
``/`` is dropped (tar paths are relative to the layer root, as in Docker), ``..`` that would climb
above the root is refused. A parent that turns out not to be a directory was either made by this
same tar (a symlink-then-write-through-it attack: refused) or comes from the lower copy (vfs):
then it is replaced by a directory, which is what overlayfs shows when an upper directory covers
a lower symlink, so both drivers give the same tree.

Metadata: numeric owner (lchown), mode including setuid/setgid/sticky applied *after* chown
(chown clears them, chown(2)), xattrs from ``SCHILY.xattr.*`` PAX records except
``trusted.overlay.*`` (a tar must not forge overlay whiteouts, opaque dirs or redirects),
mtimes (directories last, once their children are written). PAX long names, sizes and GNU
long names are decoded by :mod:`tarfile` read in streaming mode (``r|``), so the stream is read
once, front to back.

Input: :func:`unpack_layer` reads a stream once, front to back (``tarfile`` mode ``r|``).
:func:`unpack_layer_file` takes a tar in a regular file (a spooled archive member, a spooled
container diff): it reads the headers the same way but has the kernel copy each file's bytes
straight from the tar into the new file (copy_file_range(2): no trip through user space), which
is most of the bytes of a layer. Both run every entry through the same checks.

Whiteouts (OCI image-spec "Whiteouts"): ``.wh.<name>`` deletes ``<name>`` from lower layers,
``.wh..wh..opq`` hides all lower children of its directory. In ``overlay`` mode they become
overlayfs whiteouts (char device 0/0) and the ``trusted.overlay.opaque=y`` xattr; in ``delete``
mode (vfs: the target is a copy of the parent) the lower files are removed, keeping the ones
this same tar unpacked. Other ``.wh..wh.*`` names are AUFS bookkeeping and are skipped.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from sampan import errdefs
from sampan.drivers.graph.driver import WHITEOUT_DELETE, WHITEOUT_OVERLAY
from sampan.drivers.graph.tarstream import OPAQUE_MARKER, OVERLAY_XATTR_PREFIX, WHITEOUT_PREFIX

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_XATTR_PAX = "SCHILY.xattr."


@dataclass(frozen=True)
class UnpackStats:
    entries: int
    content_size: int  # bytes of regular files (each hardlinked inode counted once)


def clean_name(name: str) -> list[str]:
    """Split a tar member name into components below the layer root.

    ``InvalidParameter`` if ``..`` climbs above the root or the name has a NUL byte.
    """
    if "\x00" in name:
        raise errdefs.InvalidParameter(f"invalid layer entry name {name!r}: contains NUL")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise errdefs.InvalidParameter(
                    f"invalid layer entry {name!r}: path escapes the layer root"
                )
            parts.pop()
            continue
        parts.append(part)
    return parts


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is, recursing into directories by fd."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except PermissionError:
        # unlink(2) on a directory gives EISDIR on Linux, but EPERM elsewhere; check.
        if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
            raise
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            remove_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _unexpected_end(member: tarfile.TarInfo) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(
        f"invalid layer tar: unexpected end of data in {member.name!r}"
    )


def copy_from_stream(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    """Write ``member``'s data, read through ``tar``, to ``fd``."""
    data = tar.extractfile(member)
    if data is None or not member.size:
        return
    remaining = member.size
    while remaining:
        chunk = data.read(min(_CHUNK, remaining))
        if not chunk:
            raise _unexpected_end(member)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        remaining -= len(chunk)


def copy_from_file(source: int, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    """Have the kernel copy ``member``'s data from the tar file ``source`` (an fd; the data is
    at ``member.offset_data``) to ``fd``.

    Falls back to reading through ``tar`` for sparse members (their data is not one run of
    bytes) and where copy_file_range(2) cannot copy between these two files (EXDEV across
    filesystems on older kernels, EINVAL/ENOSYS/EOPNOTSUPP on filesystems without support)."""
    if not member.size:
        return
    if member.issparse():
        copy_from_stream(tar, member, fd)
        return
    offset = member.offset_data
    remaining = member.size
    while remaining:
        try:
            copied = os.copy_file_range(source, fd, min(remaining, 1 << 30), offset_src=offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            copied = _pread_copy(source, fd, offset, remaining)
        if copied == 0:
            raise _unexpected_end(member)
        offset += copied
        remaining -= copied


def _pread_copy(source: int, fd: int, offset: int, count: int) -> int:
    chunk = os.pread(source, min(_CHUNK, count), offset)
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]
    return len(chunk)


DataCopier = Callable[[tarfile.TarFile, tarfile.TarInfo, int], None]


class _Unpacker:
    def __init__(
        self, target: str, whiteouts: str, allow_device_nodes: bool, copy_data: DataCopier
    ) -> None:
        if whiteouts not in (WHITEOUT_OVERLAY, WHITEOUT_DELETE):
            raise errdefs.InvalidParameter(f"unknown whiteout mode {whiteouts!r}")
        self.copy_data = copy_data
        self.whiteouts = whiteouts
        self.allow_device_nodes = allow_device_nodes
        self.root_fd = os.open(target, _DIR_FLAGS)
        # Every path (and its ancestors) this tar wrote: "a/b" style keys.
        self.written: set[str] = set()
        self.dir_times: list[tuple[list[str], int]] = []
        self.cached_parent: tuple[str, int] | None = None
        self.entries = 0
        self.content_size = 0

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def _drop_cache(self) -> None:
        if self.cached_parent is not None:
            os.close(self.cached_parent[1])
            self.cached_parent = None

    def _mark_written(self, parts: list[str]) -> None:
        for i in range(1, len(parts) + 1):
            self.written.add("/".join(parts[:i]))

    def _open_dir(self, parts: list[str], create: bool, entry: str) -> int:
        """Open the directory ``parts`` below the root, component by component, never
        following a symlink. Returns a new fd the caller closes."""
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise errdefs.InvalidParameter(
                            f"invalid layer entry {entry!r}: {'/'.join(parts[: i + 1])} "
                            "does not exist"
                        ) from None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    rel = "/".join(parts[: i + 1])
                    if not create or rel in self.written:
                        raise errdefs.InvalidParameter(
                            f"invalid layer entry {entry!r}: {rel} is not a directory "
                            "(refusing to write through a symlink or file)"
                        ) from None
                    # A non-directory from the lower copy (vfs): an upper directory covers it.
                    self._drop_cache()
                    remove_at(fd, comp)
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, parts: list[str], entry: str) -> int:
        """A (cached) fd of the parent directory of ``parts``; do not close it."""
        key = "/".join(parts[:-1])
        if self.cached_parent is not None and self.cached_parent[0] == key:
            return self.cached_parent[1]
        fd = self._open_dir(parts[:-1], True, entry)
        self._drop_cache()
        self.cached_parent = (key, fd)
        return fd

    # -- entries ----------------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        parts = clean_name(member.name)
        if not parts:
            if member.isdir():
                self._set_metadata(self.root_fd, None, member)
                self.dir_times.append(([], int(member.mtime)))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, base, member.name)
            return
        pfd = self._parent(parts, member.name)
        if member.isdir():
            self._directory(pfd, parts, member)
        elif member.isreg():
            self._regular(tar, pfd, base, member)
        elif member.issym():
            self._create(pfd, base, lambda: os.symlink(member.linkname, base, dir_fd=pfd))
            self._set_metadata(pfd, base, member)
        elif member.islnk():
            self._hardlink(pfd, parts, member)
        elif member.isfifo():
            self._create(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
            self._set_metadata(pfd, base, member)
        elif member.ischr() or member.isblk():
            if not self.allow_device_nodes:
                raise errdefs.InvalidParameter(
                    f"invalid layer entry {member.name!r}: device nodes are not allowed"
                )
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            self._create(pfd, base, lambda: os.mknod(base, kind | 0o600, device, dir_fd=pfd))
            self._set_metadata(pfd, base, member)
        else:
            raise errdefs.InvalidParameter(
                f"invalid layer entry {member.name!r}: unsupported tar type {member.type!r}"
            )
        self._mark_written(parts)

    @staticmethod
    def _create(pfd: int, base: str, make: Callable[[], None]) -> None:
        """Run ``make``; if the name exists, remove it (later entries win) and run it again.

        Removing a child of the cached parent never invalidates the cache (the cache *is* the
        parent), so no cache drop here."""
        try:
            make()
        except FileExistsError:
            remove_at(pfd, base)
            make()

    def _directory(self, pfd: int, parts: list[str], member: tarfile.TarInfo) -> None:
        base = parts[-1]
        replaced = False
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=pfd).st_mode):
                remove_at(pfd, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
                replaced = True
        fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
        try:
            if replaced and self.whiteouts == WHITEOUT_OVERLAY:
                # The overlay layer dir starts empty, so what this directory replaces came
                # from this same tar: a whiteout (".wh.d" then "d/") or a file. Either way the
                # lower "d" is gone in the tar's order; without the opaque xattr overlayfs
                # would merge the lower directory's children back in (vfs would not).
                os.setxattr(fd, OVERLAY_XATTR_PREFIX + "opaque", b"y")
            self._set_metadata(fd, None, member)
        finally:
            os.close(fd)
        self.dir_times.append((parts, int(member.mtime)))

    def _regular(
        self, tar: tarfile.TarFile, pfd: int, base: str, member: tarfile.TarInfo
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            remove_at(pfd, base)
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        try:
            self.copy_data(tar, member, fd)
            self.content_size += member.size
            self._set_metadata(fd, None, member)
        finally:
            os.close(fd)

    def _hardlink(self, pfd: int, parts: list[str], member: tarfile.TarInfo) -> None:
        source = clean_name(member.linkname)
        if not source:
            raise errdefs.InvalidParameter(
                f"invalid layer entry {member.name!r}: hardlink to the layer root"
            )
        sfd = self._open_dir(source[:-1], False, member.name)
        try:
            st = self._lstat_or_none(sfd, source[-1])
            if st is None:
                raise errdefs.InvalidParameter(
                    f"invalid layer entry {member.name!r}: hardlink target "
                    f"{member.linkname!r} is not in this layer"
                )
            if stat.S_ISDIR(st.st_mode):
                raise errdefs.InvalidParameter(
                    f"invalid layer entry {member.name!r}: hardlink to a directory"
                )
            if source == parts:
                return
            base = parts[-1]

            def make() -> None:
                # linkat(2) without AT_SYMLINK_FOLLOW links the symlink itself, never its target.
                os.link(source[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)

            self._create(pfd, base, make)
        finally:
            os.close(sfd)

    @staticmethod
    def _lstat_or_none(dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return None

    def _whiteout(self, parts: list[str], base: str, entry: str) -> None:
        if base == OPAQUE_MARKER:
            fd = self._open_dir(parts[:-1], True, entry)
            try:
                if self.whiteouts == WHITEOUT_OVERLAY:
                    os.setxattr(fd, OVERLAY_XATTR_PREFIX + "opaque", b"y")
                else:
                    prefix = "/".join(parts[:-1])
                    for child in os.listdir(fd):
                        key = f"{prefix}/{child}" if prefix else child
                        if key not in self.written:
                            self._drop_cache()
                            remove_at(fd, child)
            finally:
                os.close(fd)
            self._mark_written(parts[:-1])
            return
        if base.startswith(WHITEOUT_PREFIX * 2):
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the tree
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise errdefs.InvalidParameter(f"invalid layer entry {entry!r}: bad whiteout name")
        target = [*parts[:-1], name]
        pfd = self._parent(target, entry)
        if self.whiteouts == WHITEOUT_OVERLAY:
            # An overlayfs whiteout is a character device with device number 0/0
            # (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories").
            self._create(pfd, name, lambda: os.mknod(name, stat.S_IFCHR | 0o600, 0, dir_fd=pfd))
            self._mark_written(target)
        else:
            remove_at(pfd, name)
            self._mark_written(target[:-1])

    def _set_metadata(self, fd: int, name: str | None, member: tarfile.TarInfo) -> None:
        """Owner, mode, xattrs and times of ``fd`` (or of ``name`` in directory ``fd``)."""
        is_link = member.issym()
        if name is None:
            os.chown(fd, member.uid, member.gid)
        else:
            os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            attr = key[len(_XATTR_PAX) :]
            if attr.startswith(OVERLAY_XATTR_PREFIX):
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if name is None:
                    os.setxattr(fd, attr, raw)
                else:
                    # xattrs on a symlink or fifo: through our own directory fd's /proc link,
                    # the last component not followed.
                    os.setxattr(f"/proc/self/fd/{fd}/{name}", attr, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
        if not is_link:
            # After chown: chown(2) clears setuid/setgid on regular files.
            mode = member.mode & 0o7777
            if name is None:
                os.chmod(fd, mode)
            else:
                os.chmod(name, mode, dir_fd=fd)
        if not member.isdir():
            mtime_ns = int(member.mtime * 1_000_000_000)
            if name is None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            else:
                os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=fd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory mtimes, deepest first (writing children changed them)."""
        self._drop_cache()
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self._open_dir(parts, False, "/".join(parts))
            except (errdefs.InvalidParameter, FileNotFoundError):
                continue  # replaced by a later entry
            try:
                ns = mtime * 1_000_000_000
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def unpack_layer(
    stream: BinaryIO,
    target: str,
    whiteouts: str,
    *,
    allow_device_nodes: bool = False,
) -> UnpackStats:
    """Unpack the uncompressed layer tar ``stream`` into the directory ``target``.

    ``InvalidParameter`` for a malformed or hostile tar; the caller removes ``target`` then
    (the layer store unpacks into a staging directory, so a failure leaves nothing).
    """
    return _run(stream, "r|", target, whiteouts, allow_device_nodes, copy_from_stream)


def unpack_layer_file(
    tar_file: BinaryIO,
    target: str,
    whiteouts: str,
    *,
    allow_device_nodes: bool = False,
) -> UnpackStats:
    """:func:`unpack_layer` for a tar in a regular file, from its current offset: the same
    checks, file contents copied by the kernel. The file must not change meanwhile."""
    source = tar_file.fileno()

    def copy_data(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
        copy_from_file(source, tar, member, fd)

    return _run(tar_file, "r:", target, whiteouts, allow_device_nodes, copy_data)


def _run(
    source: BinaryIO,
    mode: str,
    target: str,
    whiteouts: str,
    allow_device_nodes: bool,
    copy_data: DataCopier,
) -> UnpackStats:
    unpacker = _Unpacker(target, whiteouts, allow_device_nodes, copy_data)
    try:
        try:
            with tarfile.open(fileobj=source, mode=mode, bufsize=1 << 18) as tar:  # type: ignore[call-overload]
                for member in tar:
                    unpacker.apply(tar, member)
        except tarfile.TarError as exc:
            raise errdefs.InvalidParameter(f"invalid layer tar: {exc}") from None
        except EOFError as exc:
            raise errdefs.InvalidParameter(f"invalid layer tar: truncated ({exc})") from None
        unpacker.finish()
    finally:
        unpacker.close()
    return UnpackStats(unpacker.entries, unpacker.content_size)
