"""Published ports: Docker's ``PortBindings``/``ExposedPorts``/``PublishAllPorts`` turned into
:class:`PortMapping` values, and host ports reserved with bound sockets.

With DNAT no process listens on a published port, so a bound (not listening) socket holds
it instead: nothing else on the host can take it while the container runs, a port already
in use is found at start (``bind`` fails with EADDRINUSE), and port 0 lets the kernel choose
an ephemeral port (from ``ip_local_port_range``) for ``-P`` and ``-p <container port>``.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sampan import errdefs
from sampan.drivers.network.model import PortMapping

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortRequest:
    """One binding as asked: container port, protocol, host address and host port range
    (``(0, 0)`` for "any ephemeral port")."""

    container_port: int
    proto: str
    host_ip: str
    host_first: int
    host_last: int


def _split_port(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOCOLS:
        raise errdefs.InvalidParameter(f"invalid proto: {proto}")
    try:
        number = int(port)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid port: {key}") from exc
    if not 0 < number < 65536:
        raise errdefs.InvalidParameter(f"invalid port: {key}")
    return number, proto


def _host_range(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last) if sep else int(first)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid host port: {text}") from exc
    if not (0 <= low <= high < 65536):
        raise errdefs.InvalidParameter(f"invalid host port range: {text}")
    return low, high


def port_requests(port_bindings: Mapping[str, Any] | None,
                  exposed: Mapping[str, Any] | None, publish_all: bool) -> list[PortRequest]:
    """Docker's HostConfig.PortBindings (and, with ``-P``, Config.ExposedPorts on ephemeral
    ports) as requests; ``InvalidParameter`` for malformed ones."""
    requests: list[PortRequest] = []
    seen: set[tuple[int, str]] = set()
    for key, bindings in (port_bindings or {}).items():
        port, proto = _split_port(str(key))
        seen.add((port, proto))
        for binding in bindings or [{}]:
            host_ip = str((binding or {}).get("HostIp") or "")
            if ":" in host_ip:
                continue  # IPv6 host addresses: the engine publishes on IPv4 only
            first, last = _host_range(str((binding or {}).get("HostPort") or ""))
            requests.append(PortRequest(port, proto, host_ip, first, last))
    if publish_all:
        for key in exposed or {}:
            port, proto = _split_port(str(key))
            if (port, proto) not in seen:
                requests.append(PortRequest(port, proto, "", 0, 0))
    return requests


class Reservations(Protocol):
    def reserve(self, proto: str, host_ip: str, port: int) -> int: ...
    def release(self, proto: str, host_ip: str, port: int) -> None: ...


class SocketReservations:
    """Host ports held by bound sockets, keyed by (proto, host ip, port)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, int], socket.socket] = {}

    def reserve(self, proto: str, host_ip: str, port: int) -> int:
        """Bind ``port`` (0: an ephemeral one) and return the port now held."""
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        ip_proto = socket.IPPROTO_SCTP if proto == "sctp" else 0
        sock = socket.socket(socket.AF_INET, kind, ip_proto)
        try:
            # No SO_REUSEADDR: a server with that option could still bind the port.
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            sock.close()
            where = f"{host_ip or '0.0.0.0'}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise errdefs.Conflict(
                    f"bind for {where} failed: port is already allocated") from exc
            raise errdefs.System(f"bind for {where} failed: {exc.strerror}") from exc
        chosen = int(sock.getsockname()[1])
        self._held[(proto, host_ip, chosen)] = sock
        return chosen

    def release(self, proto: str, host_ip: str, port: int) -> None:
        sock = self._held.pop((proto, host_ip, port), None)
        if sock is not None:
            sock.close()

    def held(self) -> list[tuple[str, str, int]]:
        return sorted(self._held)


def publish(requests: Sequence[PortRequest], container_ip: str, bridge: str,
            reservations: Reservations) -> list[PortMapping]:
    """Reserve a host port for every request and return the mappings; on any failure the
    ports reserved so far are released and the error is raised."""
    mappings: list[PortMapping] = []
    try:
        for request in requests:
            port = _reserve_one(request, reservations)
            mappings.append(PortMapping(request.proto, request.host_ip, port,
                                        request.container_port, container_ip, bridge))
    except BaseException:
        for mapping in mappings:
            reservations.release(mapping.proto, mapping.host_ip, mapping.host_port)
        raise
    return mappings


def _reserve_one(request: PortRequest, reservations: Reservations) -> int:
    if request.host_first == request.host_last:
        return reservations.reserve(request.proto, request.host_ip, request.host_first)
    last_error: errdefs.SampanError | None = None
    for port in range(request.host_first, request.host_last + 1):
        try:
            return reservations.reserve(request.proto, request.host_ip, port)
        except errdefs.Conflict as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def unpublish(mappings: Sequence[PortMapping], reservations: Reservations) -> None:
    for mapping in mappings:
        with contextlib.suppress(OSError):
            reservations.release(mapping.proto, mapping.host_ip, mapping.host_port)


def ports_json(exposed: Mapping[str, Any] | None,
               mappings: Sequence[PortMapping]) -> dict[str, list[dict[str, str]] | None]:
    """``NetworkSettings.Ports``: every exposed or published port, with its bindings."""
    result: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed or {}:
        port, proto = _split_port(str(key))
        result[f"{port}/{proto}"] = None
    for mapping in mappings:
        key = f"{mapping.container_port}/{mapping.proto}"
        entries = result.get(key) or []
        entries.append({"HostIp": mapping.host_ip or "0.0.0.0",
                        "HostPort": str(mapping.host_port)})
        result[key] = entries
    return result


def summary_ports(mappings: Sequence[PortMapping], exposed: Mapping[str, Any] | None,
                  ) -> list[dict[str, Any]]:
    """``Ports`` in the container list (``docker ps``)."""
    result: list[dict[str, Any]] = []
    published = {(m.container_port, m.proto) for m in mappings}
    for mapping in mappings:
        result.append({"IP": mapping.host_ip or "0.0.0.0", "PrivatePort": mapping.container_port,
                       "PublicPort": mapping.host_port, "Type": mapping.proto})
    for key in exposed or {}:
        port, proto = _split_port(str(key))
        if (port, proto) not in published:
            result.append({"PrivatePort": port, "Type": proto})
    return result
