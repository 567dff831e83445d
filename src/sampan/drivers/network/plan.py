"""Network planning: the links, addresses, routes and sysctls a bridge network or an endpoint
needs, as a list of operations (pure data). :class:`~.executor.NetlinkExecutor` applies them;
unit tests read them.

A bridge network is a Linux bridge holding the gateway address. An endpoint is a veth pair:
the host end is a port of the bridge, the other end is created directly inside the
container's network namespace (``IFLA_NET_NS_FD``) under its final name, so no interface is
ever visible in the host namespace under a container's name, and a failed start leaves at
most the host end behind, which removal deletes (deleting one end of a veth pair deletes
both).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from sampan.drivers.network.model import Endpoint, Network

HOST_IFNAME_PREFIX = "vs"


@dataclass(frozen=True)
class CreateBridge:
    name: str
    mtu: int


@dataclass(frozen=True)
class CreateVeth:
    """A veth pair: ``host`` in the host namespace, ``peer`` inside ``netns`` (a path)."""

    host: str
    peer: str
    netns: str
    mtu: int
    mac: str = ""  # the peer's address ("" lets the kernel choose)


@dataclass(frozen=True)
class SetMaster:
    ifname: str
    master: str


@dataclass(frozen=True)
class AddAddress:
    ifname: str
    address: str
    prefixlen: int
    netns: str = ""  # "" is the host namespace


@dataclass(frozen=True)
class LinkUp:
    ifname: str
    netns: str = ""


@dataclass(frozen=True)
class AddDefaultRoute:
    gateway: str
    netns: str


@dataclass(frozen=True)
class DeleteLink:
    """Remove a link; absent already counts as done."""

    ifname: str
    netns: str = ""


@dataclass(frozen=True)
class WriteSysctl:
    """A file under /proc/sys (the host's: per-bridge settings only, never global ones)."""

    path: str
    value: str


Operation = (CreateBridge | CreateVeth | SetMaster | AddAddress | LinkUp | AddDefaultRoute
             | DeleteLink | WriteSysctl)


def plan_bridge(network: Network) -> list[Operation]:
    """The bridge, its gateway address, up; ``route_localnet`` on it so connections to a
    published port on 127.0.0.1 may leave through it once DNAT has rewritten the
    destination (the kernel drops a loopback source on a non-loopback device otherwise,
    see ``route_localnet`` in ip-sysctl.rst)."""
    subnet = ipaddress.ip_network(network.subnet)
    return [
        CreateBridge(network.bridge, network.mtu),
        AddAddress(network.bridge, network.gateway, subnet.prefixlen),
        WriteSysctl(f"net/ipv4/conf/{network.bridge}/route_localnet", "1"),
        LinkUp(network.bridge),
    ]


def plan_bridge_removal(network: Network) -> list[Operation]:
    return [DeleteLink(network.bridge)]


def host_ifname(container_id: str, network_id: str) -> str:
    """A stable name for the host end (15 bytes at most, IFNAMSIZ - 1)."""
    digest = hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()
    return f"{HOST_IFNAME_PREFIX}{digest[:11]}"


def mac_for(address: str) -> str:
    """Docker's rule: 02:42 followed by the four bytes of the IPv4 address."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)


def plan_endpoint(network: Network, endpoint: Endpoint, netns: str) -> list[Operation]:
    """The veth pair into ``netns``, the address, the default route (not on internal
    networks, and only for the first interface that has a gateway)."""
    operations: list[Operation] = [
        CreateVeth(endpoint.host_ifname, endpoint.ifname, netns, network.mtu, endpoint.mac),
        SetMaster(endpoint.host_ifname, network.bridge),
        LinkUp(endpoint.host_ifname),
        LinkUp("lo", netns),
        AddAddress(endpoint.ifname, endpoint.address, endpoint.prefixlen, netns),
        LinkUp(endpoint.ifname, netns),
    ]
    if endpoint.gateway and not network.internal:
        operations.append(AddDefaultRoute(endpoint.gateway, netns))
    return operations


def plan_endpoint_removal(endpoint: Endpoint) -> list[Operation]:
    return [DeleteLink(endpoint.host_ifname)] if endpoint.host_ifname else []
