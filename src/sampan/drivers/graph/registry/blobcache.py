"""Downloaded blobs on disk, and which registry blobs hold which layers.

:class:`BlobCache` keeps layer blobs while they download (``ingest/<hex>``, appended to and
hashed as bytes arrive) and once complete and verified (``blobs/sha256/<hex>``). A pull unpacks
a layer *while* it downloads: :meth:`Download.reader` follows the growing file and returns
end-of-file only after the whole blob arrived and its digest matched, so a corrupt or short
blob fails the unpack instead of ending it. A pull that fails keeps what it downloaded (a
partial file is resumed with ``Range``), so the retry downloads only the rest; a pull that
succeeds removes its blobs (the layer store keeps the uncompressed tar).

:class:`BlobMap` (SQLite) remembers, per layer diff id, the compressed blobs that hold it and
the registry repositories they are in (Docker's "v2 metadata"): push uses it to skip layers
the registry has (``HEAD``) or to mount them from another repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from sampan import errdefs

_STALE_SECONDS = 24 * 3600


class Download:
    """One blob being downloaded (or already complete) in the cache."""

    def __init__(self, cache: BlobCache, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        self._cache = cache
        self._hex = digest.partition(":")[2]
        self._final = os.path.join(cache.blob_dir, self._hex)
        self._partial = os.path.join(cache.ingest_dir, self._hex)
        self._cond = threading.Condition()
        self._hash = hashlib.sha256()
        self.error: BaseException | None = None
        self.users = 1
        self.finished = threading.Event()
        if os.path.exists(self._final):
            self.done = True
            self.written = os.path.getsize(self._final)
            self._fd = os.open(self._final, os.O_RDONLY | os.O_CLOEXEC)
            self.resumed = self.written
            self.finished.set()
            return
        self.done = False
        self._fd = os.open(self._partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # A partial file left by an interrupted pull: hash what is there and go on from it.
        self.written = 0
        while chunk := os.pread(self._fd, 1 << 20, self.written):
            self._hash.update(chunk)
            self.written += len(chunk)
        if self.written > size:
            os.ftruncate(self._fd, 0)
            self.written = 0
            self._hash = hashlib.sha256()
        self.resumed = self.written

    # -- writer side (the event loop) ------------------------------------------------------

    def append(self, data: bytes) -> None:
        if self.written + len(data) > self.size:
            raise errdefs.InvalidParameter(
                f"blob {self.digest} is longer than the {self.size} bytes its descriptor says"
            )
        view = memoryview(data)
        offset = self.written
        while view:
            count = os.pwrite(self._fd, view, offset)
            view = view[count:]
            offset += count
        self._hash.update(data)
        with self._cond:
            self.written += len(data)
            self._cond.notify_all()

    def complete(self) -> None:
        """Check size and digest, then move the blob into place; wakes the readers."""
        actual = "sha256:" + self._hash.hexdigest()
        try:
            if self.written != self.size:
                raise errdefs.InvalidParameter(
                    f"blob {self.digest} is {self.written} bytes, its descriptor says {self.size}"
                )
            if actual != self.digest:
                # Docker's wording; the partial file is useless now.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._partial)
                raise errdefs.InvalidParameter(
                    f"filesystem layer verification failed for digest {self.digest}: "
                    f"the registry sent {actual}"
                )
        except errdefs.SampanError as exc:
            self.fail(exc)
            raise
        os.rename(self._partial, self._final)
        with self._cond:
            self.done = True
            self._cond.notify_all()
        self.finished.set()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            if self.error is None and not self.done:
                self.error = error
            self._cond.notify_all()
        self.finished.set()

    # -- reader side (the unpacking thread) -------------------------------------------------

    def wait_readable(self, position: int) -> int:
        """Block until bytes after ``position`` exist (their count) or the blob is whole (0)."""
        with self._cond:
            while True:
                if self.error is not None:
                    raise errdefs.Unavailable(f"download of {self.digest} failed: {self.error}")
                if self.written > position:
                    return self.written - position
                if self.done:
                    return 0
                self._cond.wait()

    def pread(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def reader(self) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_FollowingReader(self), 1 << 20))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def remove(self) -> None:
        """Forget the blob (after a successful pull: the layer store holds the layer now)."""
        for path in (self._final, self._partial):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class _FollowingReader(io.RawIOBase):
    def __init__(self, download: Download) -> None:
        self._download = download
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        available = self._download.wait_readable(self._position)
        if available == 0:
            return 0
        data = self._download.pread(min(len(view), available), self._position)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


class BlobCache:
    """Blobs being or having been downloaded, under ``root``; one :class:`Download` per
    digest at a time (two pulls of one layer share it)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.ingest_dir = os.path.join(root, "ingest")
        os.makedirs(self.blob_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.ingest_dir, mode=0o700, exist_ok=True)
        self._active: dict[str, Download] = {}
        self._lock = threading.Lock()
        self._remove_stale()

    def _remove_stale(self) -> None:
        now = time.time()
        for directory in (self.blob_dir, self.ingest_dir):
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if now - os.stat(path).st_mtime > _STALE_SECONDS:
                        os.unlink(path)

    def open(self, digest: str, size: int) -> tuple[Download, bool]:
        """The download of ``digest`` and whether the caller owns it (must fetch the bytes);
        a caller that does not own it waits for :attr:`Download.finished`."""
        with self._lock:
            download = self._active.get(digest)
            if download is not None and download.error is None:
                download.users += 1
                return download, False
            download = Download(self, digest, size)
            self._active[digest] = download
            return download, True

    def release(self, download: Download, *, remove: bool) -> None:
        """One user is done; the last one closes it (and removes the blob when asked)."""
        with self._lock:
            download.users -= 1
            if download.users > 0:
                return
            if self._active.get(download.digest) is download:
                del self._active[download.digest]
        download.close()
        if remove:
            download.remove()

    def has(self, digest: str) -> bool:
        return os.path.exists(os.path.join(self.blob_dir, digest.partition(":")[2]))


@dataclass(frozen=True)
class KnownBlob:
    digest: str
    media_type: str
    size: int
    registry: str
    repository: str


class BlobMap:
    """diff id -> compressed blobs in registry repositories (SQLite, WAL)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS blobs (diff_id TEXT NOT NULL, digest TEXT NOT NULL, "
            "media_type TEXT NOT NULL, size INTEGER NOT NULL, registry TEXT NOT NULL, "
            "repository TEXT NOT NULL, seen REAL NOT NULL, "
            "PRIMARY KEY (diff_id, digest, registry, repository))"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def add(self, diff_id: str, blob: KnownBlob) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (diff_id, blob.digest, blob.media_type, blob.size, blob.registry,
                 blob.repository, time.time()),
            )

    def forget(self, diff_id: str, blob: KnownBlob) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM blobs WHERE diff_id = ? AND digest = ? AND registry = ? "
                "AND repository = ?",
                (diff_id, blob.digest, blob.registry, blob.repository),
            )

    def lookup(self, diff_id: str, registry: str) -> list[KnownBlob]:
        """Blobs known to hold ``diff_id`` on ``registry``, most recently seen first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT digest, media_type, size, registry, repository FROM blobs "
                "WHERE diff_id = ? AND registry = ? ORDER BY seen DESC",
                (diff_id, registry),
            ).fetchall()
        return [KnownBlob(*row) for row in rows]
