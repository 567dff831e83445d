"""The image store's metadata: one SQLite database in WAL mode.

Tables::

    images        id (config digest = image ID), parent, created_ns, size, last_tag_time
    image_layers  (image_id, position) -> chain_id, diff_id: the layer references an image holds
    refs          name ("docker.io/library/busybox:latest" or "...@sha256:..") -> image_id
    owned_blobs   digests this store put into the content store (configs, manifests)
    blob_refs     (image_id, digest): which owned blobs an image keeps alive
    pending_layers layer references taken by an operation that has not committed yet

Every change is one transaction (``with db.transaction() as tx``), so a crash leaves either
the old or the new state. Two things happen outside the database and are journalled so
``recover()`` can undo them on the next start: a blob is recorded in ``owned_blobs`` (committed)
*before* it is written, and every layer reference taken while creating an image is recorded
in ``pending_layers`` (committed) right after it is taken; the transaction that inserts the
image deletes those rows. An image row appears only after all its layers and blobs exist.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    parent TEXT,
    created_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    last_tag_time TEXT,
    added_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS refs (
    name TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS refs_image ON refs(image_id);
CREATE TABLE IF NOT EXISTS owned_blobs (digest TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS blob_refs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE TABLE IF NOT EXISTS pending_layers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    chain_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ImageRow:
    id: str
    parent: str | None
    created_ns: int
    size: int
    last_tag_time: str | None
    added_ns: int


@dataclass(frozen=True)
class RefRow:
    name: str
    repo: str
    kind: str
    image_id: str


class MetadataDB:
    """Thin typed access to the database; all writes go through :meth:`transaction`."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        with self.transaction() as tx:
            tx.executescript_in_tx(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # Reads (each a single statement: consistent under WAL).

    def image(self, image_id: str) -> ImageRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, parent, created_ns, size, last_tag_time, added_ns"
                " FROM images WHERE id = ?",
                (image_id,),
            ).fetchone()
        return ImageRow(*row) if row else None

    def images(self) -> list[ImageRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, parent, created_ns, size, last_tag_time, added_ns FROM images"
                " ORDER BY created_ns DESC, id"
            ).fetchall()
        return [ImageRow(*row) for row in rows]

    def ids_with_prefix(self, hex_prefix: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id FROM images WHERE substr(id, 8, ?) = ?",
                (len(hex_prefix), hex_prefix),
            ).fetchall()
        return [row[0] for row in rows]

    def children(self, image_id: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id FROM images WHERE parent = ?", (image_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def layers(self, image_id: str) -> list[tuple[str, str]]:
        """``(chain_id, diff_id)`` bottom to top."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT chain_id, diff_id FROM image_layers WHERE image_id = ? ORDER BY position",
                (image_id,),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def chain_use_counts(self) -> dict[str, int]:
        """How many images hold each chain ID."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT chain_id, COUNT(DISTINCT image_id) FROM image_layers GROUP BY chain_id"
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def ref(self, name: str) -> RefRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT name, repo, kind, image_id FROM refs WHERE name = ?", (name,)
            ).fetchone()
        return RefRow(*row) if row else None

    def refs(self, image_id: str | None = None, repo: str | None = None) -> list[RefRow]:
        query = "SELECT name, repo, kind, image_id FROM refs"
        clauses, args = [], []
        if image_id is not None:
            clauses.append("image_id = ?")
            args.append(image_id)
        if repo is not None:
            clauses.append("repo = ?")
            args.append(repo)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY rowid", args).fetchall()
        return [RefRow(*row) for row in rows]

    def pending_layers(self) -> list[tuple[int, str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, operation, chain_id FROM pending_layers ORDER BY seq DESC"
            ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def unreferenced_blobs(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT digest FROM owned_blobs WHERE digest NOT IN"
                " (SELECT digest FROM blob_refs)"
            ).fetchall()
        return [row[0] for row in rows]

    def blob_refs(self, image_id: str) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT digest, role FROM blob_refs WHERE image_id = ?", (image_id,)
            ).fetchall()
        return [(row[0], row[1]) for row in rows]


class Transaction:
    """The writes, valid only inside ``MetadataDB.transaction()``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def executescript_in_tx(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._conn.execute(statement)

    def insert_image(self, row: ImageRow, layers: list[tuple[str, str]]) -> None:
        self._conn.execute(
            "INSERT INTO images (id, parent, created_ns, size, last_tag_time, added_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (row.id, row.parent, row.created_ns, row.size, row.last_tag_time, row.added_ns),
        )
        self._conn.executemany(
            "INSERT INTO image_layers (image_id, position, chain_id, diff_id) VALUES (?, ?, ?, ?)",
            [(row.id, pos, chain, diff) for pos, (chain, diff) in enumerate(layers)],
        )

    def delete_image(self, image_id: str) -> None:
        self._conn.execute("DELETE FROM refs WHERE image_id = ?", (image_id,))
        self._conn.execute("DELETE FROM blob_refs WHERE image_id = ?", (image_id,))
        self._conn.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
        self._conn.execute("UPDATE images SET parent = NULL WHERE parent = ?", (image_id,))
        self._conn.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def set_ref(self, name: str, repo: str, kind: str, image_id: str) -> str | None:
        """Point ``name`` at ``image_id``; returns the image it pointed to before, if other."""
        row = self._conn.execute("SELECT image_id FROM refs WHERE name = ?", (name,)).fetchone()
        self._conn.execute(
            "INSERT INTO refs (name, repo, kind, image_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            (name, repo, kind, image_id),
        )
        previous = row[0] if row else None
        return previous if previous != image_id else None

    def delete_ref(self, name: str) -> bool:
        return self._conn.execute("DELETE FROM refs WHERE name = ?", (name,)).rowcount > 0

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        self._conn.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (when, image_id))

    def own_blob(self, digest: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO owned_blobs (digest) VALUES (?)", (digest,))

    def disown_blob(self, digest: str) -> None:
        self._conn.execute("DELETE FROM owned_blobs WHERE digest = ?", (digest,))

    def add_blob_ref(self, image_id: str, digest: str, role: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO blob_refs (image_id, digest, role) VALUES (?, ?, ?)",
            (image_id, digest, role),
        )

    def add_pending_layer(self, operation: str, chain_id: str) -> None:
        self._conn.execute(
            "INSERT INTO pending_layers (operation, chain_id) VALUES (?, ?)",
            (operation, chain_id),
        )

    def clear_pending(self, operation: str) -> None:
        self._conn.execute("DELETE FROM pending_layers WHERE operation = ?", (operation,))

    def delete_pending(self, seq: int) -> None:
        self._conn.execute("DELETE FROM pending_layers WHERE seq = ?", (seq,))
