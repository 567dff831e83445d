"""Choosing subnets that collide with nothing the host already routes."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable

from sampan import errdefs

# The default bridge tries these first; 172.17.0.0/16 (docker0's default) is left out on
# purpose so a dockerd started later still gets its usual subnet.
DEFAULT_BRIDGE_CANDIDATES = ("172.29.0.0/16", "172.28.0.0/16", "10.88.0.0/16",
                             "192.168.227.0/24")


def user_network_candidates() -> Iterable[ipaddress.IPv4Network]:
    """Docker's predefined pools (172.17-31/16 and 192.168.0.0/16 cut in /20s), from the
    top down so Docker's own bottom-up choices meet ours last."""
    for second in range(31, 17, -1):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    for third in range(240, -1, -16):
        yield ipaddress.IPv4Network(f"192.168.{third}.0/20")


def host_routes(proc_route: str = "/proc/net/route",
                exclude: Iterable[str] = ()) -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes (default route excluded), except those through
    the links named in ``exclude`` (a bridge of our own that a previous daemon left: its
    addresses are ours to reuse, not a collision)."""
    skipped = set(exclude)
    found = []
    try:
        with open(proc_route) as handle:
            lines = handle.read().splitlines()[1:]
    except FileNotFoundError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[0] in skipped:
            continue
        destination = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        if network.prefixlen > 0:
            found.append(network)
    return found


def choose_subnet(candidates: Iterable[ipaddress.IPv4Network | str],
                  in_use: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    used = list(in_use)
    for candidate in candidates:
        network = ipaddress.IPv4Network(candidate)
        if not any(network.overlaps(other) for other in used):
            return network
    raise errdefs.Unavailable(
        "all predefined address pools have been fully subnetted")


def overlapping(subnet: ipaddress.IPv4Network,
                in_use: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network | None:
    return next((other for other in in_use if subnet.overlaps(other)), None)
