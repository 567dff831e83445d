"""The layer store: image layers unpacked once per chain, and containers' read-write layers.

Identity (as Docker's layer store): a layer's ``diff_id`` is the sha256 of its uncompressed
tar; its ``chain_id`` is the ``diff_id`` for a base layer, else
``sha256(parent_chain_id + " " + diff_id)``. A chain is unpacked once; registering it again
adds a reference.

References: ``register`` and ``retain`` return a layer holding one reference for the caller; a
layer holds one reference on its parent; a container's read-write layer holds one on its image's
top layer. ``release`` drops one and removes layers that reach zero, then drops their
references on their parents. So an image store keeps one reference on each image's *top* layer
and, after registering a chain bottom-up, releases the references ``register`` returned for the
lower layers (as ``docker load`` does).

Storage under ``<root>``: ``layers.db`` (SQLite, WAL: chains, reference counts, read-write
layers), ``diffs/`` (each layer's original tar in a :class:`ContentStore`, for ``diff_tar``:
byte-identical, so diff ids match on save/push), ``overlay/`` or ``vfs/`` (the driver's dirs),
``tmp/`` (spooled export/diff tars). Crash safety: a layer is unpacked into a staging dir,
flushed (syncfs), renamed into place, then recorded in one transaction; on open, dirs and tars
no row refers to are removed, so a crash at any point leaves either the whole layer or nothing.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import os
import secrets
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from sampan import errdefs
from sampan.drivers.graph.content import ContentStore, check_digest
from sampan.drivers.graph.driver import Change, GraphDriver, KernelCalls, Mount
from sampan.drivers.graph.overlay import OverlayDriver, overlay_supported
from sampan.drivers.graph.tarstream import BackgroundCopy, Sink, TeeReader
from sampan.drivers.graph.unpack import UnpackStats, unpack_layer, unpack_layer_file
from sampan.drivers.graph.vfs import VfsDriver

__all__ = ["Change", "Layer", "LayerStore", "Mount", "chain_id_of"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT REFERENCES layers(chain_id),
    size INTEGER NOT NULL,
    content_size INTEGER NOT NULL,
    cache_id TEXT NOT NULL UNIQUE,
    refs INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rw (
    container_id TEXT PRIMARY KEY,
    image TEXT REFERENCES layers(chain_id),
    cache_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Layer:
    """An image layer. ``size`` is the size of its uncompressed tar (as registered);
    :meth:`LayerStore.layer_size` gives the bytes of its own regular files."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    cache_id: str


def _is_regular_file(stream: BinaryIO) -> bool:
    """Is ``stream`` a regular file we can seek in and pread (not a pipe, socket or buffer)?"""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.seekable()
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False


def chain_id_of(parent: str | None, diff_id: str) -> str:
    """Docker's chain id: ``diff_id`` for a base layer, else sha256 of "parent diff_id"."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def _make_driver(root: str, name: str, calls: KernelCalls) -> GraphDriver:
    if name == "overlay":
        return OverlayDriver(os.path.join(root, "overlay"), calls)
    if name == "vfs":
        return VfsDriver(os.path.join(root, "vfs"))
    raise errdefs.InvalidParameter(f"unknown graph driver {name!r}")


class LayerStore:
    def __init__(
        self,
        root: str,
        driver: str = "auto",
        *,
        calls: KernelCalls | None = None,
        allow_device_nodes: bool = False,
        durable: bool = True,
    ) -> None:
        """Open (or create) the store. ``driver``: "overlay", "vfs" or "auto" (the driver the
        store was last opened with, else overlay when an overlay mount works under ``root``, else
        vfs). ``allow_device_nodes``: accept char/block devices in layer tars (refused by
        default: an image has no business shipping them). ``durable``: syncfs each new layer
        before recording it."""
        self.root = root
        self._calls = calls or KernelCalls()
        self._allow_devices = allow_device_nodes
        self._durable = durable
        self._lock = threading.RLock()
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._tmp = os.path.join(root, "tmp")
        os.makedirs(self._tmp, mode=0o700, exist_ok=True)
        self._diffs = ContentStore(os.path.join(root, "diffs"))
        self._db = sqlite3.connect(
            os.path.join(root, "layers.db"), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.driver_name = self._choose_driver(driver)
        self._driver = _make_driver(root, self.driver_name, self._calls)
        self._recover()

    def close(self) -> None:
        self._db.close()

    # -- bookkeeping -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _choose_driver(self, wanted: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'driver'").fetchone()
        recorded = cast("str | None", row[0] if row else None)
        has_layers = self._db.execute(
            "SELECT EXISTS(SELECT 1 FROM layers) OR EXISTS(SELECT 1 FROM rw)"
        ).fetchone()[0]
        if wanted == "auto":
            if recorded:
                return recorded
            probe = os.path.join(self.root, "overlay")
            os.makedirs(os.path.join(probe, "staging"), mode=0o700, exist_ok=True)
            wanted = "overlay" if overlay_supported(probe, self._calls) else "vfs"
        elif wanted not in ("overlay", "vfs"):
            raise errdefs.InvalidParameter(f"unknown graph driver {wanted!r}")
        elif recorded and has_layers and recorded != wanted:
            raise errdefs.Conflict(
                f"layer store {self.root} holds layers of driver {recorded}, not {wanted}"
            )
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('driver', ?)", (wanted,))
        return wanted

    def _recover(self) -> None:
        """Remove what a crash left: layer dirs and tars that no row refers to."""
        keep = {r[0] for r in self._db.execute("SELECT cache_id FROM layers")}
        keep |= {r[0] for r in self._db.execute("SELECT cache_id FROM rw")}
        self._driver.cleanup(keep)
        diff_ids = {r[0] for r in self._db.execute("SELECT DISTINCT diff_id FROM layers")}
        for digest in self._diffs.list():
            if digest not in diff_ids:
                with contextlib.suppress(errdefs.NotFound):
                    self._diffs.delete(digest)
        for name in os.listdir(self._tmp):
            shutil.rmtree(os.path.join(self._tmp, name), ignore_errors=True)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(os.path.join(self._tmp, name))

    def _row(self, chain_id: str) -> tuple[str, str, str | None, int, int, str, int]:
        row = self._db.execute(
            "SELECT chain_id, diff_id, parent, size, content_size, cache_id, refs "
            "FROM layers WHERE chain_id = ?",
            (chain_id,),
        ).fetchone()
        if row is None:
            raise errdefs.NotFound(f"no such layer: {chain_id}")
        return cast("tuple[str, str, str | None, int, int, str, int]", tuple(row))

    @staticmethod
    def _layer(row: tuple[str, str, str | None, int, int, str, int]) -> Layer:
        return Layer(chain_id=row[0], diff_id=row[1], parent=row[2], size=row[3], cache_id=row[5])

    def _lowers(self, chain_id: str | None) -> list[str]:
        """Cache ids of the chain ending in ``chain_id``, top first."""
        lowers: list[str] = []
        current = chain_id
        while current is not None:
            row = self._row(current)
            lowers.append(row[5])
            current = row[2]
        return lowers

    # -- image layers ------------------------------------------------------------------------

    def register(
        self, tar: BinaryIO, parent: str | None, expected_diff_id: str | None = None
    ) -> Layer:
        """Unpack the uncompressed layer tar ``tar`` on top of ``parent`` (a chain id).

        A ``tar`` that is a regular file is read twice, by two threads (unpacked, and copied
        into the diff store): it must not change meanwhile; any other stream is read once.
        Returns the layer with one reference for the caller. ``InvalidParameter`` for a
        malformed or hostile tar, or a diff id other than ``expected_diff_id``; ``NotFound``
        for an unknown parent. A failure leaves nothing behind."""
        if expected_diff_id is not None:
            check_digest(expected_diff_id)
        with self._lock:
            lowers = self._lowers(parent)
        cache_id = secrets.token_hex(32)
        driver = self._driver
        target = driver.prepare_layer(cache_id, lowers)
        try:
            with self._diffs.writer() as blob:
                try:
                    if _is_regular_file(tar):
                        stats, size = self._unpack_file(tar, target, blob)
                    else:
                        stats, size = self._unpack_stream(tar, target, blob)
                except OSError as exc:
                    raise errdefs.System(f"cannot unpack layer: {exc}") from exc
                diff_id = blob.digest
                if expected_diff_id is not None and diff_id != expected_diff_id:
                    raise errdefs.InvalidParameter(
                        f"layer diff id mismatch: expected {expected_diff_id}, got {diff_id}"
                    )
                chain_id = chain_id_of(parent, diff_id)
                with self._lock:
                    if self.exists(chain_id):
                        driver.abort_layer(cache_id)
                        return self.retain(chain_id)
                    if parent is not None:
                        self._row(parent)  # still there?
                    if self._durable:
                        self._calls.syncfs(target)
                    blob.commit()
                    driver.commit_layer(cache_id)
                    try:
                        with self._transaction() as db:
                            db.execute(
                                "INSERT INTO layers VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                                (chain_id, diff_id, parent, size, stats.content_size,
                                 cache_id, time.time()),
                            )
                            if parent is not None:
                                db.execute(
                                    "UPDATE layers SET refs = refs + 1 WHERE chain_id = ?",
                                    (parent,),
                                )
                    except BaseException:
                        driver.remove_layer(cache_id)
                        raise
                    return Layer(chain_id, diff_id, parent, size, cache_id)
        except BaseException:
            driver.abort_layer(cache_id)
            raise

    def _unpack_stream(self, tar: BinaryIO, target: str, blob: Sink) -> tuple[UnpackStats, int]:
        reader = TeeReader(tar, blob)
        stats = unpack_layer(
            cast("BinaryIO", reader),
            target,
            self._driver.whiteouts,
            allow_device_nodes=self._allow_devices,
        )
        reader.drain()
        return stats, reader.size

    def _unpack_file(self, tar: BinaryIO, target: str, blob: Sink) -> tuple[UnpackStats, int]:
        """A tar in a regular file: one thread copies it into the diff blob (hashing it: the
        diff id) while this one unpacks it, file contents copied by the kernel."""
        copy = BackgroundCopy(tar.fileno(), tar.tell(), blob)
        copy.start()
        try:
            stats = unpack_layer_file(
                tar, target, self._driver.whiteouts, allow_device_nodes=self._allow_devices
            )
        except BaseException:
            copy.cancel()
            raise
        size = copy.finish()
        tar.seek(0, os.SEEK_END)  # consumed, as a stream would be
        return stats, size

    def retain(self, chain_id: str) -> Layer:
        """Add one reference to an existing layer (``NotFound`` if absent)."""
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                "UPDATE layers SET refs = refs + 1 WHERE chain_id = ?", (chain_id,)
            )
            if cursor.rowcount == 0:
                raise errdefs.NotFound(f"no such layer: {chain_id}")
            return self._layer(self._row(chain_id))

    def get(self, chain_id: str) -> Layer:
        with self._lock:
            return self._layer(self._row(chain_id))

    def exists(self, chain_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)
            ).fetchone()
            return row is not None

    def refcount(self, chain_id: str) -> int:
        with self._lock:
            return self._row(chain_id)[6]

    def list(self) -> list[Layer]:
        with self._lock:
            rows = self._db.execute(
                "SELECT chain_id, diff_id, parent, size, content_size, cache_id, refs "
                "FROM layers ORDER BY created"
            ).fetchall()
        return [self._layer(cast("tuple[str, str, str | None, int, int, str, int]", r))
                for r in rows]

    def release(self, chain_id: str) -> builtins.list[Layer]:
        """Drop one reference; remove layers whose count reaches zero (then their parents')."""
        removed: builtins.list[Layer] = []
        with self._lock:
            with self._transaction() as db:
                current: str | None = chain_id
                while current is not None:
                    row = self._row(current)
                    if row[6] > 1:
                        db.execute(
                            "UPDATE layers SET refs = refs - 1 WHERE chain_id = ?", (current,)
                        )
                        break
                    db.execute("DELETE FROM layers WHERE chain_id = ?", (current,))
                    removed.append(self._layer(row))
                    current = row[2]
            # Rows first, files second: a crash in between leaves orphans that _recover removes.
            for layer in removed:
                self._driver.remove_layer(layer.cache_id)
                still_used = self._db.execute(
                    "SELECT 1 FROM layers WHERE diff_id = ?", (layer.diff_id,)
                ).fetchone()
                if still_used is None:
                    with contextlib.suppress(errdefs.NotFound):
                        self._diffs.delete(layer.diff_id)
        return removed

    def diff_tar(self, chain_id: str) -> BinaryIO:
        """The layer's uncompressed tar, byte-identical to the one registered."""
        return self._diffs.open(self.get(chain_id).diff_id)

    def layer_size(self, chain_id: str) -> int:
        """Bytes of the layer's own regular files (hardlinks counted once)."""
        with self._lock:
            return self._row(chain_id)[4]

    def layer_dir(self, chain_id: str) -> str:
        """Where the layer's own tree is (overlay: only its files; vfs: the full tree)."""
        return self._driver.layer_dir(self.get(chain_id).cache_id)

    def mount_lowers(self, chain_id: str) -> builtins.list[str]:
        """The layer dirs of the chain ending in ``chain_id``, top first."""
        with self._lock:
            return [self._driver.layer_dir(c) for c in self._lowers(chain_id)]

    # -- read-write layers -------------------------------------------------------------------

    def _rw(self, container_id: str) -> tuple[str | None, str, builtins.list[str]]:
        row = self._db.execute(
            "SELECT image, cache_id FROM rw WHERE container_id = ?", (container_id,)
        ).fetchone()
        if row is None:
            raise errdefs.NotFound(f"no read-write layer for container {container_id}")
        image = cast("str | None", row[0])
        return image, cast(str, row[1]), self._lowers(image)

    def create_rw(self, container_id: str, image_chain_id: str | None) -> builtins.list[Mount]:
        """Make the container's read-write layer; returns the mounts to make at its rootfs.
        Holds a reference on ``image_chain_id`` until :meth:`remove_rw`."""
        with self._lock:
            exists = self._db.execute(
                "SELECT 1 FROM rw WHERE container_id = ?", (container_id,)
            ).fetchone()
            if exists:
                raise errdefs.Conflict(f"read-write layer for container {container_id} exists")
            lowers = self._lowers(image_chain_id)
            cache_id = secrets.token_hex(32)
            mounts = self._driver.create_rw(cache_id, lowers)
            try:
                with self._transaction() as db:
                    db.execute(
                        "INSERT INTO rw VALUES (?, ?, ?, ?)",
                        (container_id, image_chain_id, cache_id, time.time()),
                    )
                    if image_chain_id is not None:
                        db.execute(
                            "UPDATE layers SET refs = refs + 1 WHERE chain_id = ?",
                            (image_chain_id,),
                        )
            except BaseException:
                self._driver.remove_layer(cache_id)
                raise
            return mounts

    def rw_mounts(self, container_id: str) -> builtins.list[Mount]:
        with self._lock:
            _, cache_id, lowers = self._rw(container_id)
            return self._driver.rw_mounts(cache_id, lowers)

    def rw_image(self, container_id: str) -> str | None:
        """The chain id the container's read-write layer sits on (None: scratch)."""
        with self._lock:
            return self._rw(container_id)[0]

    def remove_rw(self, container_id: str) -> None:
        """Remove the read-write layer (the runtime must have unmounted it)."""
        with self._lock:
            image, cache_id, _ = self._rw(container_id)
            with self._transaction() as db:
                db.execute("DELETE FROM rw WHERE container_id = ?", (container_id,))
            self._driver.remove_layer(cache_id)
            if image is not None:
                self.release(image)

    def changes(self, container_id: str) -> builtins.list[Change]:
        with self._lock:
            _, cache_id, lowers = self._rw(container_id)
        return self._driver.changes(cache_id, lowers)

    def _spool(self) -> BinaryIO:
        return cast(BinaryIO, tempfile.TemporaryFile(dir=self._tmp))

    def export_rw(self, container_id: str) -> BinaryIO:
        """The container's whole filesystem as a tar (a temporary file, at offset 0)."""
        with self._lock:
            _, cache_id, lowers = self._rw(container_id)
        out = self._spool()
        try:
            self._driver.export(cache_id, lowers, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return out

    def diff_rw(self, container_id: str) -> BinaryIO:
        """The container's changes as a layer tar (``.wh.`` whiteouts), ready to register."""
        with self._lock:
            _, cache_id, lowers = self._rw(container_id)
        out = self._spool()
        try:
            self._driver.diff(cache_id, lowers, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return out

    def rw_size(self, container_id: str) -> int:
        with self._lock:
            _, cache_id, lowers = self._rw(container_id)
        return self._driver.rw_size(cache_id, lowers)

    def list_rw(self) -> builtins.list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT container_id FROM rw ORDER BY created")]
