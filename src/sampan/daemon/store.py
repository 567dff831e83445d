"""``state.db``: the containers' records in SQLite (WAL).

One row per container: its id, its unique name and the whole record as JSON. Every change is
one transaction, and a name is unique by a SQL constraint, so a crash at any instant leaves
each container either as it was or as it became, and two containers can never share a name.
``synchronous=NORMAL`` in WAL mode keeps the database consistent across a crash of the
process or the machine (a power loss may lose the last commits, never corrupt).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sampan import errdefs
from sampan.daemon.model import Container

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    doc TEXT NOT NULL
);
"""


class ContainerStore:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def insert(self, container: Container) -> None:
        """Add a new container; ``Conflict`` if its name is taken."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO containers VALUES (?, ?, ?, ?)",
                    (container.id, container.name, container.created,
                     json.dumps(container.to_json())),
                )
        except sqlite3.IntegrityError as exc:
            raise errdefs.Conflict(
                f'Conflict. The container name "{container.name}" is already in use'
            ) from exc

    def save(self, container: Container) -> None:
        """Write the container's current record (its name too: a rename is one save)."""
        try:
            with self._transaction() as db:
                cursor = db.execute(
                    "UPDATE containers SET name = ?, doc = ? WHERE id = ?",
                    (container.name, json.dumps(container.to_json()), container.id),
                )
                if cursor.rowcount == 0:
                    raise errdefs.NotFound(f"No such container: {container.id}")
        except sqlite3.IntegrityError as exc:
            raise errdefs.Conflict(
                f'Conflict. The container name "{container.name}" is already in use'
            ) from exc

    def delete(self, container_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def load_all(self) -> list[Container]:
        rows = self._db.execute("SELECT doc FROM containers ORDER BY created").fetchall()
        return [Container.from_json(json.loads(row[0])) for row in rows]
