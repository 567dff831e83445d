"""Tar streams in and out of the layer store.

In: :class:`TeeReader` hands a layer tar to the unpacker while every byte also goes to a sink
(the blob writer that hashes it: that hash is the layer's diff id). For a tar in a regular file,
:class:`BackgroundCopy` feeds the sink from a second thread with pread(2) while the unpacker
reads the same file (hashing and the unpacker's syscalls release the GIL: two cores work).

Out: :class:`TreeTarWriter` writes files of a tree we own (layer dirs, read-write layers,
read-only overlay mounts) into a PAX tar the way ``docker save``/``docker export`` do: numeric
owners, mtimes truncated to seconds, no atime/ctime, hardlinks within the tar as link entries,
xattrs as ``SCHILY.xattr.*`` (never ``trusted.overlay.*``, the overlay driver's own metadata).
Files are opened with ``O_NOFOLLOW`` and never through a symlink.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import threading
from typing import BinaryIO, Protocol

OVERLAY_XATTR_PREFIX = "trusted.overlay."
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

_CHUNK = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class TeeReader:
    """A read-only stream that copies what is read from ``source`` into ``sink``."""

    def __init__(self, source: BinaryIO, sink: Sink) -> None:
        self._source = source
        self._sink = sink
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._sink.write(data)
            self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end (tar readers stop at the end-of-archive blocks; the diff id covers
        every byte of the stream)."""
        while self.read(_CHUNK):
            pass


class BackgroundCopy:
    """Copy the file ``fd`` from ``offset`` to its end into ``sink``, in a thread.

    ``start`` it, then ``finish`` (wait; re-raises what the thread raised) or ``cancel`` (stop
    soon and wait). pread(2) leaves the file offset alone, so another reader may share ``fd``.
    """

    def __init__(self, fd: int, offset: int, sink: Sink) -> None:
        self._fd = fd
        self._offset = offset
        self._sink = sink
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-tar-copy", daemon=True)
        self.size = 0

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = os.pread(self._fd, _CHUNK, self._offset + self.size)
                if not chunk:
                    return
                self._sink.write(chunk)
                self.size += len(chunk)
        except BaseException as exc:  # handed to the caller by finish()
            self._error = exc

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> int:
        """Wait for the copy to reach the end of the file; returns the bytes copied."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.size

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


def read_xattrs(path: str | int, follow_symlinks: bool = False) -> dict[str, bytes]:
    """Every xattr of ``path`` but the overlay driver's own ``trusted.overlay.*``."""
    try:
        names = os.listxattr(path, follow_symlinks=follow_symlinks)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    found: dict[str, bytes] = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=follow_symlinks)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
    return found


def is_whiteout(st: os.stat_result) -> bool:
    """Overlay's whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class TreeTarWriter:
    """Adds files of trees on disk to one tar archive written to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        # Closed by close(): the caller decides when the archive ends.
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def _header(self, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = ""
        info.gname = ""
        info.mtime = int(st.st_mtime)
        return info

    def add(self, path: str, arcname: str, st: os.stat_result | None = None) -> None:
        """Add one file, directory, symlink, device or fifo (directories are not recursed)."""
        if st is None:
            st = os.lstat(path)
        info = self._header(arcname, st)
        mode = st.st_mode
        xattrs = read_xattrs(path)
        if xattrs:
            info.pax_headers = {
                "SCHILY.xattr." + name: value.decode("utf-8", "surrogateescape")
                for name, value in xattrs.items()
            }
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type = tarfile.LNKTYPE
                info.linkname = self._links[key]
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self._links[key] = arcname
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as data:
                self.tar.addfile(info, data)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets cannot be archived (tar has no type for them); docker skips them
        self.tar.addfile(info)

    def add_empty(self, arcname: str, st: os.stat_result, mode: int = 0o600) -> None:
        """An empty regular file (a ``.wh.`` whiteout or the opaque marker)."""
        info = self._header(arcname, st)
        info.mode = mode
        info.type = tarfile.REGTYPE
        info.size = 0
        self.tar.addfile(info)

    def add_tree(self, root: str, prefix: str = "") -> None:
        """Add ``root``'s contents recursively, sorted, without following symlinks."""
        with os.scandir(root) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            arcname = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            self.add(entry.path, arcname, st)
            if stat.S_ISDIR(st.st_mode):
                self.add_tree(entry.path, arcname + "/")
