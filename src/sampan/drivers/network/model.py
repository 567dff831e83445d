"""The driver's data: networks, endpoints and published ports (pure data, JSON round-trip)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BRIDGE = "bridge"
CNI = "cni"
DRIVERS = (BRIDGE, CNI)

OPTION_BRIDGE_NAME = "com.docker.network.bridge.name"
OPTION_ICC = "com.docker.network.bridge.enable_icc"
OPTION_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPTION_MTU = "com.docker.network.driver.mtu"
OPTION_HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
OPTION_CNI_CONFLIST = "sampan.cni.conflist"  # a conflist file path
OPTION_CNI_CONFLIST_JSON = "sampan.cni.conflist.json"  # the conflist itself, inline

DEFAULT_MTU = 1500


@dataclass
class Network:
    """One network as the daemon keeps it (Docker's ``NetworkResource`` is made from it)."""

    id: str
    name: str
    driver: str
    created: int  # ns since the epoch
    subnet: str = ""  # "10.1.0.0/24" ("" for CNI networks: the plugins own addresses)
    gateway: str = ""
    ip_range: str = ""
    bridge: str = ""  # the Linux bridge's name
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    mtu: int = DEFAULT_MTU
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    attachable: bool = False
    predefined: bool = False  # the default "bridge" network
    dns: bool = True  # embedded DNS (user-defined networks; not the default bridge)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Network:
        return cls(**data)


@dataclass
class Endpoint:
    """A container's interface on one network."""

    network_id: str
    container_id: str
    endpoint_id: str
    ifname: str  # inside the container: eth0, eth1, ...
    host_ifname: str = ""  # the host end of the veth pair (bridge driver)
    address: str = ""  # "10.1.0.2"
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    aliases: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)  # names other containers resolve
    static: bool = False  # the address was asked for (--ip)
    cni_result: dict[str, Any] = field(default_factory=dict)
    ports: list[dict[str, Any]] = field(default_factory=list)  # PortMapping.to_json()s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        return cls(**data)


@dataclass(frozen=True)
class PortMapping:
    """One published port: host_ip:host_port/proto -> container_ip:container_port."""

    proto: str  # "tcp" | "udp" | "sctp"
    host_ip: str  # "" or "0.0.0.0" means every address of the host
    host_port: int
    container_port: int
    container_ip: str = ""
    bridge: str = ""  # the bridge behind container_ip (for hairpin NAT)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PortMapping:
        return cls(**data)
