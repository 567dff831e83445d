"""``network.db``: networks, endpoints and IP allocations in SQLite (WAL).

IPAM lives in the ``allocations`` table: an address is allocated by inserting a row whose
(network, address) pair is the primary key, in the same transaction as the endpoint that
uses it, so an address can never be handed out twice, and a crash leaves an allocation only
with its endpoint. Releasing an endpoint deletes both. After a crash the daemon lists the
endpoints and releases those whose containers no longer run (see the daemon's restore).
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sampan import errdefs
from sampan.drivers.network.model import Endpoint, Network

_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id)
);
CREATE TABLE IF NOT EXISTS allocations (
    network_id TEXT NOT NULL,
    address TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (network_id, address)
);
CREATE TABLE IF NOT EXISTS attachments (
    container_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (container_id, network_id)
);
"""


class NetworkState:
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

    # ------------------------------------------------------------------ networks

    def add_network(self, network: Network) -> None:
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO networks VALUES (?, ?, ?)",
                           (network.id, network.name, json.dumps(network.to_json())))
        except sqlite3.IntegrityError as exc:
            raise errdefs.Conflict(f"network with name {network.name} already exists") from exc

    def remove_network(self, network_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM allocations WHERE network_id = ?", (network_id,))
            db.execute("DELETE FROM endpoints WHERE network_id = ?", (network_id,))
            db.execute("DELETE FROM attachments WHERE network_id = ?", (network_id,))
            db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def networks(self) -> list[Network]:
        rows = self._db.execute("SELECT doc FROM networks").fetchall()
        return [Network.from_json(json.loads(row[0])) for row in rows]

    # ------------------------------------------------------------------ IPAM + endpoints

    def allocated(self, network_id: str) -> set[str]:
        rows = self._db.execute("SELECT address FROM allocations WHERE network_id = ?",
                                (network_id,)).fetchall()
        return {row[0] for row in rows}

    def add_endpoint(self, network: Network, endpoint: Endpoint, requested: str = "") -> Endpoint:
        """Allocate the endpoint's address (``requested``, or the first free one in the
        network's ip-range) and record both in one transaction. ``Conflict`` when the
        requested address is taken, ``Unavailable`` when the range is exhausted."""
        with self._transaction() as db:
            if network.subnet:
                taken = {row[0] for row in db.execute(
                    "SELECT address FROM allocations WHERE network_id = ?", (network.id,))}
                address = requested or first_free(network, taken)
                if requested:
                    check_requested(network, requested)
                    if requested in taken:
                        raise errdefs.Conflict(
                            f"address {requested} is already in use on network {network.name}")
                db.execute("INSERT INTO allocations VALUES (?, ?, ?)",
                           (network.id, address, endpoint.container_id))
                endpoint.address = address
                endpoint.prefixlen = ipaddress.ip_network(network.subnet).prefixlen
                endpoint.gateway = network.gateway
            db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                       (network.id, endpoint.container_id, json.dumps(endpoint.to_json())))
        return endpoint

    def update_endpoint(self, endpoint: Endpoint) -> None:
        with self._transaction() as db:
            db.execute("UPDATE endpoints SET doc = ? WHERE network_id = ? AND container_id = ?",
                       (json.dumps(endpoint.to_json()), endpoint.network_id,
                        endpoint.container_id))

    def remove_endpoint(self, network_id: str, container_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                       (network_id, container_id))
            db.execute("DELETE FROM allocations WHERE network_id = ? AND owner = ?",
                       (network_id, container_id))

    def endpoints(self, *, network_id: str | None = None,
                  container_id: str | None = None) -> list[Endpoint]:
        query, args = "SELECT doc FROM endpoints WHERE 1", []
        if network_id is not None:
            query += " AND network_id = ?"
            args.append(network_id)
        if container_id is not None:
            query += " AND container_id = ?"
            args.append(container_id)
        return [Endpoint.from_json(json.loads(row[0]))
                for row in self._db.execute(query, args).fetchall()]

    def all_allocations(self) -> list[tuple[str, str, str]]:
        return sorted(self._db.execute("SELECT network_id, address, owner FROM allocations"))

    # ------------------------------------------------------------------ attachments
    # What a container asked for on each network (aliases, static address), kept from create
    # (or connect) until the container or the attachment is removed.

    def set_attachment(self, container_id: str, network_id: str, doc: dict[str, object]) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO attachments VALUES (?, ?, ?)",
                       (container_id, network_id, json.dumps(doc)))

    def remove_attachment(self, container_id: str, network_id: str | None = None) -> None:
        with self._transaction() as db:
            if network_id is None:
                db.execute("DELETE FROM attachments WHERE container_id = ?", (container_id,))
            else:
                db.execute("DELETE FROM attachments WHERE container_id = ? AND network_id = ?",
                           (container_id, network_id))

    def attachments(self, container_id: str | None = None
                    ) -> list[tuple[str, str, dict[str, object]]]:
        query, args = "SELECT container_id, network_id, doc FROM attachments", []
        if container_id is not None:
            query += " WHERE container_id = ?"
            args.append(container_id)
        query += " ORDER BY rowid"
        return [(row[0], row[1], json.loads(row[2]))
                for row in self._db.execute(query, args).fetchall()]


def _range(network: Network) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(network.ip_range or network.subnet)


def check_requested(network: Network, address: str) -> None:
    subnet = ipaddress.IPv4Network(network.subnet)
    try:
        wanted = ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid IPv4 address: {address}") from exc
    if wanted not in subnet or wanted in (subnet.network_address, subnet.broadcast_address):
        raise errdefs.InvalidParameter(
            f"no configured subnet or ip-range contain the IP address {address}")
    if address == network.gateway:
        raise errdefs.Conflict(f"address {address} is the gateway of network {network.name}")


def first_free(network: Network, taken: set[str]) -> str:
    """The lowest free host address of the ip-range (never the subnet's network or
    broadcast address, nor the gateway)."""
    subnet = ipaddress.IPv4Network(network.subnet)
    for candidate in _range(network).hosts():
        text = str(candidate)
        if text == network.gateway or text in taken:
            continue
        if candidate in (subnet.network_address, subnet.broadcast_address):
            continue
        return text
    raise errdefs.Unavailable(f"no available addresses on network {network.name}")
