"""Content-addressed blob store: ``<root>/blobs/sha256/<hex>``.

A blob is written to a temporary file in ``<root>/ingest``, hashed (and counted) while it is
written, fsync'ed and renamed into place only when its digest matches. Rename within one
filesystem is atomic (rename(2)), so a reader sees either no blob or the whole blob and a crash
leaves at most a stray temporary file, removed the next time the store is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from typing import BinaryIO

from sampan import errdefs

_CHUNK = 1 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_digest(digest: str) -> str:
    """Return the hex part of ``sha256:<hex>`` or raise ``InvalidParameter``."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise errdefs.InvalidParameter(f"invalid digest: {digest!r}")
    return digest[len("sha256:") :]


class BlobWriter:
    """One blob being written: ``write`` hashes as it goes; ``commit`` verifies and renames.

    Use as a context manager: leaving the block without ``commit`` removes the temporary file.
    """

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self._tmp = os.path.join(store.ingest_dir, f"{os.getpid()}-{secrets.token_hex(8)}")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Verify digest (and size), fsync, rename into place; return ``sha256:<hex>``."""
        digest = self.digest
        try:
            if expected is not None and digest != expected:
                raise errdefs.InvalidParameter(
                    f"digest mismatch for blob {expected}: content hashes to {digest}"
                )
            if size is not None and size != self.size:
                raise errdefs.InvalidParameter(
                    f"size mismatch for blob {digest}: expected {size} bytes, got {self.size}"
                )
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.rename(self._tmp, self._store.path(digest))
            self._done = True
        finally:
            if not self._done:
                self.abort()
        self._store.sync_blob_dir()
        return digest

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)
        self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()


class ContentStore:
    """Blobs addressed by sha256 under ``<root>/blobs/sha256/<hex>``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.ingest_dir = os.path.join(root, "ingest")
        os.makedirs(self.blob_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.ingest_dir, mode=0o700, exist_ok=True)
        self._remove_stale_ingests()

    def _remove_stale_ingests(self) -> None:
        # Temporary files of writers that died (crash mid-ingest). Files of live writers in this
        # process are named with our pid and are left alone.
        mine = f"{os.getpid()}-"
        for name in os.listdir(self.ingest_dir):
            if not name.startswith(mine):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.ingest_dir, name))

    def sync_blob_dir(self) -> None:
        """fsync the blob directory so a committed rename survives a power loss."""
        fd = os.open(self.blob_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def writer(self) -> BlobWriter:
        """Start a blob; write to it and ``commit`` (or leave the ``with`` block to drop it)."""
        return BlobWriter(self)

    def ingest(self, stream: BinaryIO, expected: str | None = None, size: int | None = None) -> str:
        """Copy ``stream`` into the store; ``InvalidParameter`` on digest or size mismatch."""
        if expected is not None:
            check_digest(expected)
            if self.has(expected):
                # Still consume and verify? The blob is already trusted; skip the copy.
                return expected
        with self.writer() as blob:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                blob.write(chunk)
                if size is not None and blob.size > size:
                    raise errdefs.InvalidParameter(
                        f"size mismatch for blob {expected or 'being ingested'}: "
                        f"more than {size} bytes"
                    )
            return blob.commit(expected, size)

    def ingest_bytes(self, data: bytes, expected: str | None = None) -> str:
        if expected is not None:
            check_digest(expected)
            if self.has(expected):
                return expected
        with self.writer() as blob:
            blob.write(data)
            return blob.commit(expected)

    def path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, check_digest(digest))

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")  # the caller closes it
        except FileNotFoundError:
            raise errdefs.NotFound(f"no such blob: {digest}") from None

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise errdefs.NotFound(f"no such blob: {digest}") from None

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            raise errdefs.NotFound(f"no such blob: {digest}") from None

    def list(self) -> list[str]:
        return sorted("sha256:" + name for name in os.listdir(self.blob_dir) if len(name) == 64)
