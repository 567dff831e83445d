"""``NetworkService``: networks (the Engine API's ``/networks``) and containers' network
attachments, over the network driver (``sampan.drivers.network``).

A container's network lives from its start to its exit: at start the service makes the
container's network namespace (a file under ``<exec-root>/netns``, joined by the runtime
through the OCI config), allocates an address on each network the container is attached to,
plugs a veth pair into the bridge (or runs the CNI plugins), reserves and publishes its
ports, starts the embedded DNS server in it and writes its ``/etc/hosts`` and
``/etc/resolv.conf``. At exit (or when a start fails) it undoes all of it; every step of the
undo tolerates what is already gone, so it also cleans up after a crash of the daemon.

Concurrency: one ``asyncio.Lock`` orders every change of networks, endpoints and the
firewall; the blocking work (netlink, ``nft``, CNI plugins, SQLite) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sampan import errdefs
from sampan.daemon.model import PAUSED, RUNNING, Container
from sampan.daemon.netfiles import (
    EMBEDDED_DNS,
    hosts_content,
    hosts_with_address,
    hosts_without_address,
    parse_extra_hosts,
    resolv_content,
)
from sampan.daemon.timefmt import rfc3339_nano
from sampan.drivers.network import ports as portmod
from sampan.drivers.network.bridge import BridgeDriver
from sampan.drivers.network.chainwatch import DockerChainWatch
from sampan.drivers.network.cni import CniRunner, load_conflist, result_addresses
from sampan.drivers.network.dns import EmbeddedDns
from sampan.drivers.network.model import (
    BRIDGE,
    CNI,
    OPTION_BRIDGE_NAME,
    OPTION_CNI_CONFLIST,
    OPTION_CNI_CONFLIST_JSON,
    OPTION_ICC,
    OPTION_MASQUERADE,
    OPTION_MTU,
    Endpoint,
    Network,
    PortMapping,
)
from sampan.drivers.network.netns import NetnsFiles, loopback_up
from sampan.drivers.network.plan import host_ifname, mac_for
from sampan.drivers.network.state import NetworkState
from sampan.drivers.network.subnets import (
    DEFAULT_BRIDGE_CANDIDATES,
    choose_subnet,
    host_routes,
    overlapping,
    user_network_candidates,
)

log = logging.getLogger("sampand.networks")

DEFAULT_NETWORK = "bridge"
HOST = "host"
NONE = "none"
USER_BRIDGE_PREFIX = "sm-"  # + 12 hex digits of the network id: 15 bytes, IFNAMSIZ - 1
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class ContainerDirectory(Protocol):
    """What networks need from the containers service."""

    def get(self, ref: str) -> Container: ...
    def all(self) -> list[Container]: ...


@dataclass(frozen=True)
class NetworkConfig:
    """The daemon's network options (``--bridge``, ``--bip``, ``--firewall-table``)."""

    bridge: str = "sampan0"  # "none": no default bridge, containers get a loopback only
    bip: str = ""  # "172.29.0.1/16": the default bridge's gateway and subnet
    table: str = "sampan"
    host_resolv: str = "/etc/resolv.conf"


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _write(path: str, content: str) -> None:
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        handle.write(content)
    os.chmod(temp, 0o644)
    os.rename(temp, path)


def _rewrite(path: str, content: str) -> None:
    """Replace the content of a file a running container has bind-mounted (same inode: a
    rename would leave the container looking at the old file)."""
    with open(path, "r+") as handle:
        handle.write(content)
        handle.truncate()


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).lower() in ("1", "true", "yes", "on")


class NetworkService:
    def __init__(self, *, state: NetworkState, driver: BridgeDriver, netns: NetnsFiles,
                 dns: EmbeddedDns | None, reservations: portmod.Reservations,
                 config: NetworkConfig, container_dir: str,
                 chain_watch: DockerChainWatch | None = None) -> None:
        self._state = state
        self._chain_watch = chain_watch
        self._driver = driver
        self._netns = netns
        self._dns = dns
        self._reservations = reservations
        self.config = config
        self._container_dir = container_dir  # <data-root>/containers
        self._lock = asyncio.Lock()
        self._containers: ContainerDirectory | None = None
        self._networks: dict[str, Network] = {}
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    def bind_containers(self, containers: ContainerDirectory) -> None:
        self._containers = containers

    def set_dns(self, dns: EmbeddedDns) -> None:
        self._dns = dns

    # ------------------------------------------------------------------ lookups

    def _directory(self) -> ContainerDirectory:
        if self._containers is None:
            raise errdefs.Unavailable("network service is not ready")
        return self._containers

    def find(self, ref: str) -> Network:
        """By full ID, then name, then unique ID prefix (Docker's order)."""
        if ref in self._networks:
            return self._networks[ref]
        for network in self._networks.values():
            if network.name == ref:
                return network
        matches = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errdefs.InvalidParameter(f"network {ref} is ambiguous ({len(matches)} "
                                           "matches found on name)")
        raise errdefs.NotFound(f"network {ref} not found")

    def _default(self) -> Network | None:
        return next((n for n in self._networks.values() if n.name == DEFAULT_NETWORK), None)

    def primary_name(self, host_config: Mapping[str, Any]) -> str:
        mode = str(host_config.get("NetworkMode") or "default")
        return DEFAULT_NETWORK if mode == "default" else mode

    def lookup_name(self, container_id: str, name: str) -> list[str] | None:
        """The embedded DNS's view: addresses for ``name`` on the DNS networks the container
        is on (None when no container there has that name)."""
        mine = [e.network_id for e in self._endpoints.values() if e.container_id == container_id
                and self._networks.get(e.network_id, Network("", "", "", 0)).dns]
        found: list[str] = []
        wanted = name.lower()
        for network_id in mine:
            network_name = self._networks[network_id].name.lower()
            for endpoint in self._endpoints.values():
                if endpoint.network_id != network_id or not endpoint.address:
                    continue
                names = {n.lower() for n in endpoint.dns_names}
                if wanted in names or any(wanted == f"{n}.{network_name}" for n in names):
                    found.append(endpoint.address)
        return sorted(set(found)) or None

    # ------------------------------------------------------------------ start-up

    async def load(self) -> None:
        """Load the networks and endpoints and make sure the predefined networks and every
        bridge exist (before the containers are restored: their exits release endpoints)."""
        async with self._lock:
            for network in await asyncio.to_thread(self._state.networks):
                self._networks[network.id] = network
            await self._ensure_predefined()
            for network in list(self._networks.values()):
                if network.driver == BRIDGE and network.bridge:
                    await asyncio.to_thread(self._driver.create, network)
            for endpoint in await asyncio.to_thread(self._state.endpoints):
                self._endpoints[(endpoint.network_id, endpoint.container_id)] = endpoint

    async def restore(self) -> None:
        """After the containers are restored: release the endpoints of containers that no
        longer run (a crash, a reboot), and rebuild the firewall, the port reservations and
        the DNS servers of the running ones."""
        async with self._lock:
            running = {c.id: c for c in self._directory().all()
                       if c.state.status in (RUNNING, PAUSED)}
            for container_id in {e.container_id for e in self._endpoints.values()}:
                if container_id not in running:
                    await self._teardown_locked(container_id)
            for container_id in set(self._netns.names()) - set(running):
                await asyncio.to_thread(self._netns.remove, container_id)
            for container in running.values():
                for endpoint in self._endpoints_of(container.id):
                    for data in endpoint.ports:
                        mapping = PortMapping.from_json(data)
                        with contextlib.suppress(errdefs.SampanError):
                            self._reservations.reserve(mapping.proto, mapping.host_ip,
                                                       mapping.host_port)
                if self._dns is not None and any(self._networks[e.network_id].dns
                                                 for e in self._endpoints_of(container.id)):
                    with contextlib.suppress(OSError, errdefs.SampanError):
                        await self._dns.serve(container.id, self._netns.path(container.id),
                                              self._upstreams(container))
            await self._sync_firewall()
        if self._chain_watch is not None:
            await self._chain_watch.start(self._docker_chain_created)

    async def _docker_chain_created(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._driver.resync_docker_user)

    async def _ensure_predefined(self) -> None:
        names = {n.name: n for n in self._networks.values()}
        for name, driver in ((HOST, "host"), (NONE, "null")):
            if name not in names:
                await self._add(Network(id=secrets.token_hex(32), name=name, driver=driver,
                                        created=time.time_ns(), predefined=True, dns=False))
        if self.config.bridge == "none":
            return
        current = names.get(DEFAULT_NETWORK)
        if current is not None and current.bridge == self.config.bridge and (
                not self.config.bip or _bip_matches(current, self.config.bip)):
            return
        if current is not None:
            with contextlib.suppress(errdefs.SampanError, OSError):
                await asyncio.to_thread(self._driver.remove, current)
            await asyncio.to_thread(self._state.remove_network, current.id)
            del self._networks[current.id]
        if self.config.bip:
            interface = ipaddress.IPv4Interface(self.config.bip)
            subnet, gateway = interface.network, str(interface.ip)
        else:
            # The bridge's own routes do not count (an address a previous daemon gave it is
            # reused, not added to); when every usual subnet is taken, Docker's pools follow.
            in_use = host_routes(exclude=[self.config.bridge]) + self._subnets()
            subnet = choose_subnet(
                [*DEFAULT_BRIDGE_CANDIDATES, *user_network_candidates()], in_use)
            gateway = str(next(subnet.hosts()))
        await self._add(Network(
            id=secrets.token_hex(32), name=DEFAULT_NETWORK, driver=BRIDGE,
            created=time.time_ns(), subnet=str(subnet), gateway=gateway,
            bridge=self.config.bridge, predefined=True, dns=False,
            options={OPTION_BRIDGE_NAME: self.config.bridge, OPTION_ICC: "true",
                     OPTION_MASQUERADE: "true", OPTION_MTU: "1500"}))

    async def _add(self, network: Network) -> None:
        await asyncio.to_thread(self._state.add_network, network)
        self._networks[network.id] = network

    def _subnets(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.IPv4Network(n.subnet) for n in self._networks.values() if n.subnet]

    # ------------------------------------------------------------------ API: networks

    async def network_create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str(body.get("Name") or "")
        if not name or not _NAME.match(name):
            raise errdefs.InvalidParameter(f"invalid network name: {name!r}")
        driver = str(body.get("Driver") or BRIDGE)
        if driver not in (BRIDGE, CNI):
            if driver in ("host", "null", "overlay", "macvlan", "ipvlan"):
                raise errdefs.Forbidden(f"network driver {driver!r} is not supported")
            raise errdefs.NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv6"):
            raise errdefs.NotImplementedFeature("IPv6 networks are not supported")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        ipam = body.get("IPAM") or {}
        configs = ipam.get("Config") or []
        async with self._lock:
            if any(n.name == name for n in self._networks.values()):
                raise errdefs.Conflict(f"network with name {name} already exists")
            network_id = secrets.token_hex(32)
            network = Network(id=network_id, name=name, driver=driver, created=time.time_ns(),
                              internal=bool(body.get("Internal")),
                              attachable=bool(body.get("Attachable")), labels=labels,
                              options=options,
                              ipam_options={str(k): str(v)
                                            for k, v in (ipam.get("Options") or {}).items()})
            if driver == CNI:
                self._configure_cni(network)
            else:
                self._configure_bridge(network, configs)
                await asyncio.to_thread(self._driver.create, network)
            try:
                await self._add(network)
            except BaseException:
                if driver == BRIDGE:
                    with contextlib.suppress(OSError, errdefs.SampanError):
                        await asyncio.to_thread(self._driver.remove, network)
                raise
            await self._sync_firewall()
        return {"Id": network_id, "Warning": ""}

    def _configure_cni(self, network: Network) -> None:
        path = network.options.get(OPTION_CNI_CONFLIST, "")
        inline = network.options.get(OPTION_CNI_CONFLIST_JSON, "")
        if not path and not inline:
            raise errdefs.InvalidParameter(
                f"a cni network needs option {OPTION_CNI_CONFLIST}=<file> or "
                f"{OPTION_CNI_CONFLIST_JSON}=<json>")
        conflist = load_conflist(path=path, inline=inline)
        network.options[OPTION_CNI_CONFLIST_JSON] = json.dumps(conflist)
        network.dns = True

    def _configure_bridge(self, network: Network, configs: Sequence[Mapping[str, Any]]) -> None:
        if len(configs) > 1:
            raise errdefs.NotImplementedFeature("only one IPv4 subnet per network is supported")
        config = configs[0] if configs else {}
        in_use = host_routes() + self._subnets()
        if config.get("Subnet"):
            try:
                subnet = ipaddress.IPv4Network(str(config["Subnet"]))
            except ValueError as exc:
                raise errdefs.InvalidParameter(f"invalid subnet {config['Subnet']}: {exc}"
                                               ) from exc
            clash = overlapping(subnet, in_use)
            if clash is not None:
                raise errdefs.Forbidden(
                    f"Pool overlaps with other one on this address space ({clash})")
        else:
            subnet = choose_subnet(user_network_candidates(), in_use)
        gateway = str(config.get("Gateway") or next(subnet.hosts()))
        try:
            if ipaddress.IPv4Address(gateway) not in subnet:
                raise errdefs.InvalidParameter(f"gateway {gateway} is not in subnet {subnet}")
            if config.get("IPRange"):
                ip_range = ipaddress.IPv4Network(str(config["IPRange"]))
                if not ip_range.subnet_of(subnet):
                    raise errdefs.InvalidParameter(
                        f"ip-range {ip_range} is not in subnet {subnet}")
                network.ip_range = str(ip_range)
        except ValueError as exc:
            raise errdefs.InvalidParameter(str(exc)) from exc
        network.subnet, network.gateway = str(subnet), gateway
        bridge = network.options.get(OPTION_BRIDGE_NAME) or (
            USER_BRIDGE_PREFIX + network.id[:12])
        if len(bridge) > 15 or any(n.bridge == bridge for n in self._networks.values()):
            raise errdefs.Conflict(f"bridge name {bridge} is invalid or already in use")
        network.bridge = bridge
        network.icc = _truthy(network.options.get(OPTION_ICC), True)
        network.masquerade = _truthy(network.options.get(OPTION_MASQUERADE), True)
        try:
            network.mtu = int(network.options.get(OPTION_MTU) or 1500)
        except ValueError as exc:
            raise errdefs.InvalidParameter(f"invalid mtu: {network.options[OPTION_MTU]}"
                                           ) from exc

    async def network_inspect(self, ref: str) -> dict[str, Any]:
        return self._resource(self.find(ref), with_containers=True)

    async def networks_list(self, filters: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
        for key in filters:
            if key not in ("name", "id", "driver", "label", "type", "scope", "dangling"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        result = []
        for network in sorted(self._networks.values(), key=lambda n: n.created):
            if _matches(network, filters, self._in_use(network)):
                result.append(self._resource(network, with_containers=False))
        return result

    async def network_delete(self, ref: str) -> None:
        network = self.find(ref)
        if network.predefined:
            raise errdefs.Forbidden(
                f"{network.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            users = self._users(network)
            if users:
                raise errdefs.Forbidden(
                    f"error while removing network: network {network.name} id {network.id} "
                    f"has active endpoints ({', '.join(users)})")
            await self._remove_locked(network)

    async def _remove_locked(self, network: Network) -> None:
        if network.driver == BRIDGE:
            await asyncio.to_thread(self._driver.remove, network)
        await asyncio.to_thread(self._state.remove_network, network.id)
        self._networks.pop(network.id, None)
        await self._sync_firewall()

    async def networks_prune(self, filters: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        deleted = []
        async with self._lock:
            for network in list(self._networks.values()):
                if network.predefined or self._users(network):
                    continue
                if not _labels_ok(network.labels, filters):
                    continue
                await self._remove_locked(network)
                deleted.append(network.name)
        return {"NetworksDeleted": deleted or None}

    def _users(self, network: Network) -> list[str]:
        """Names of the containers attached to ``network`` (running or not)."""
        names = []
        directory = self._directory()
        for container in directory.all():
            if network.id in self._attached_ids(container):
                names.append(container.name.lstrip("/"))
        return names

    def _in_use(self, network: Network) -> bool:
        return bool(self._users(network)) if self._containers is not None else False

    def _resource(self, network: Network, with_containers: bool) -> dict[str, Any]:
        ipam_config = []
        if network.subnet:
            entry = {"Subnet": network.subnet, "Gateway": network.gateway}
            if network.ip_range:
                entry["IPRange"] = network.ip_range
            ipam_config.append(entry)
        containers: dict[str, Any] = {}
        if with_containers:
            directory = self._containers
            for endpoint in self._endpoints.values():
                if endpoint.network_id != network.id:
                    continue
                name = ""
                if directory is not None:
                    with contextlib.suppress(errdefs.SampanError):
                        name = directory.get(endpoint.container_id).name.lstrip("/")
                containers[endpoint.container_id] = {
                    "Name": name, "EndpointID": endpoint.endpoint_id,
                    "MacAddress": endpoint.mac,
                    "IPv4Address": (f"{endpoint.address}/{endpoint.prefixlen}"
                                    if endpoint.address else ""),
                    "IPv6Address": ""}
        options = dict(network.options)
        return {
            "Name": network.name, "Id": network.id, "Created": rfc3339_nano(network.created),
            "Scope": "local", "Driver": network.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": network.ipam_options or None,
                     "Config": ipam_config},
            "Internal": network.internal, "Attachable": network.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": options, "Labels": network.labels,
        }

    # ------------------------------------------------------------------ containers: create

    def _mode_network(self, mode: str) -> Network | None:
        """The network a NetworkMode names (None for host, none, container:<id>, or the
        default bridge when it is disabled)."""
        if mode in (HOST, NONE) or mode.startswith("container:"):
            return None
        if mode in ("default", DEFAULT_NETWORK):
            return self._default()
        return self.find(mode)

    def check_create(self, host_config: Mapping[str, Any],
                     networking_config: Mapping[str, Any]) -> None:
        """``NotFound`` for a network that does not exist, ``InvalidParameter`` for options
        the network mode forbids."""
        mode = self.primary_name(host_config)
        if mode.startswith("container:"):
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                raise errdefs.InvalidParameter(
                    "conflicting options: port publishing and the container type network mode")
            if host_config.get("ExtraHosts") or host_config.get("Dns"):
                raise errdefs.InvalidParameter(
                    "conflicting options: custom DNS or hosts and the container type network "
                    "mode")
            self._directory().get(mode.partition(":")[2])
        elif mode not in (HOST, NONE, DEFAULT_NETWORK):
            self.find(mode)
        endpoints = _endpoints_config(networking_config)
        for name, settings in endpoints.items():
            if name == DEFAULT_NETWORK and self._default() is None:
                continue
            network = self.find(str(name)) if name not in (HOST, NONE) else None
            ipam = (settings or {}).get("IPAMConfig") or {}
            if ipam.get("IPv4Address") and (network is None or network.predefined):
                raise errdefs.InvalidParameter(
                    "user specified IP address is supported on user defined networks only")

    def record_create(self, container_id: str, host_config: Mapping[str, Any],
                      networking_config: Mapping[str, Any]) -> None:
        """Remember what the container asked for on each network it is created on."""
        mode = self.primary_name(host_config)
        endpoints = _endpoints_config(networking_config)
        primary = self._mode_network(mode)
        ordered: list[tuple[Network, Mapping[str, Any]]] = []
        if primary is not None:
            settings = endpoints.get(mode) or endpoints.get(primary.name) or endpoints.get(
                primary.id) or {}
            ordered.append((primary, settings))
        for name, settings in endpoints.items():
            if name in (HOST, NONE) or (primary is not None and name in (
                    mode, primary.name, primary.id)) or (
                    name == DEFAULT_NETWORK and self._default() is None):
                continue
            ordered.append((self.find(str(name)), settings or {}))
        for network, settings in ordered:
            self._state.set_attachment(container_id, network.id, _attachment_doc(settings))

    def _attached_ids(self, container: Container) -> list[str]:
        return [network_id for _, network_id, _ in self._state.attachments(container.id)]

    def forget(self, container_id: str) -> None:
        """The container is removed: drop its attachments."""
        self._state.remove_attachment(container_id)

    # ------------------------------------------------------------------ containers: start

    def netns_path(self, container_id: str) -> str:
        return self._netns.path(container_id)

    async def setup(self, container: Container) -> None:
        """Give a starting container its network (see the module docstring). On failure
        everything done so far is undone before the error is raised."""
        mode = self.primary_name(container.host_config)
        if mode == HOST:
            return
        if mode == NONE:
            # its own namespace with only a loopback, up (what Docker's `none` gives)
            netns = await asyncio.to_thread(self._netns.create, container.id)
            await asyncio.to_thread(loopback_up, netns)
            return
        if mode.startswith("container:"):
            await self._share_namespace(container, mode.partition(":")[2])
            return
        attachments = await asyncio.to_thread(self._state.attachments, container.id)
        if not attachments and (mode != DEFAULT_NETWORK or self._default() is None):
            return
        async with self._lock:
            try:
                await self._setup_locked(container, attachments)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._teardown_locked(container.id)
                raise

    async def _share_namespace(self, container: Container, ref: str) -> None:
        other = self._directory().get(ref)
        if other.state.status not in (RUNNING, PAUSED):
            raise errdefs.Conflict(
                f"cannot join network of a non running container: {other.id}")
        source = self._netns.path(other.id)
        if not os.path.exists(source):
            source = f"/proc/{other.state.pid}/ns/net"
        await asyncio.to_thread(self._netns.share, container.id, source)
        mine = os.path.join(self._container_dir, container.id)
        theirs = os.path.join(self._container_dir, other.id)
        for name in ("hosts", "resolv.conf", "hostname"):
            content = await asyncio.to_thread(_read, os.path.join(theirs, name))
            if content:
                await asyncio.to_thread(_write, os.path.join(mine, name), content)

    async def _setup_locked(self, container: Container,
                            attachments: list[tuple[str, str, dict[str, Any]]]) -> None:
        phases = _Phases()
        netns = await asyncio.to_thread(self._netns.create, container.id)
        phases.mark("netns")
        first: Endpoint | None = None
        for index, (_, network_id, doc) in enumerate(attachments):
            network = self._networks.get(network_id)
            if network is None:
                raise errdefs.NotFound(f"network {network_id} not found")
            endpoint = await self._join(container, network, doc, f"eth{index}", netns,
                                        publish=index == 0)
            first = first or endpoint
        phases.mark("endpoints")
        if first is not None:
            await self._sync_firewall()
        phases.mark("firewall")
        uses_dns = any(self._networks[e.network_id].dns for e in self._endpoints_of(container.id))
        if uses_dns and self._dns is not None:
            await asyncio.to_thread(self._driver.loopback_up, netns)
            await self._dns.serve(container.id, netns, self._upstreams(container))
        phases.mark("dns")
        await asyncio.to_thread(self._write_files, container, first, uses_dns)
        phases.mark("files")
        log.debug("network setup of %s took %s", container.id[:12], phases)

    async def _join(self, container: Container, network: Network, doc: Mapping[str, Any],
                    ifname: str, netns: str, publish: bool) -> Endpoint:
        short = container.id[:12]
        aliases = [str(a) for a in doc.get("Aliases") or []]
        endpoint = Endpoint(
            network_id=network.id, container_id=container.id,
            endpoint_id=secrets.token_hex(32), ifname=ifname,
            host_ifname=host_ifname(container.id, network.id) if network.driver == BRIDGE
            else "",
            aliases=aliases,
            dns_names=[container.name.lstrip("/"), *aliases, short]
            if not network.predefined else [],
            static=bool(doc.get("IPv4Address")))
        if network.driver == CNI:
            return await self._join_cni(container, network, endpoint, netns)
        endpoint = await asyncio.to_thread(self._state.add_endpoint, network, endpoint,
                                           str(doc.get("IPv4Address") or ""))
        self._endpoints[(network.id, container.id)] = endpoint
        endpoint.mac = mac_for(endpoint.address)
        await asyncio.to_thread(self._driver.join, network, endpoint, netns)
        if publish:
            requests = portmod.port_requests(container.host_config.get("PortBindings"),
                                             container.config.get("ExposedPorts"),
                                             bool(container.host_config.get("PublishAllPorts")))
            try:
                mappings = portmod.publish(requests, endpoint.address, network.bridge,
                                           self._reservations)
            except errdefs.SampanError as exc:
                raise type(exc)(
                    "driver failed programming external connectivity on endpoint "
                    f"{container.name.lstrip('/')} ({endpoint.endpoint_id}): {exc}") from exc
            endpoint.ports = [m.to_json() for m in mappings]
        await asyncio.to_thread(self._state.update_endpoint, endpoint)
        return endpoint

    async def _join_cni(self, container: Container, network: Network, endpoint: Endpoint,
                        netns: str) -> Endpoint:
        runner = self._cni_runner(network)
        self._endpoints[(network.id, container.id)] = endpoint
        await asyncio.to_thread(self._state.add_endpoint, network, endpoint)
        result = await asyncio.to_thread(runner.add, container.id, netns, endpoint.ifname)
        endpoint.cni_result = result
        addresses = result_addresses(result)
        if addresses:
            endpoint.address = addresses[0].address
            endpoint.prefixlen = addresses[0].prefixlen
            endpoint.gateway = addresses[0].gateway
        for interface in result.get("interfaces") or []:
            if interface.get("sandbox") and interface.get("mac"):
                endpoint.mac = str(interface["mac"])
        await asyncio.to_thread(self._state.update_endpoint, endpoint)
        return endpoint

    def _cni_runner(self, network: Network) -> CniRunner:
        return CniRunner(load_conflist(inline=network.options[OPTION_CNI_CONFLIST_JSON]))

    def _upstreams(self, container: Container) -> list[str]:
        servers = [str(s) for s in container.host_config.get("Dns") or []]
        if servers:
            return servers
        resolv = _read(self.config.host_resolv)
        return [line.split()[1] for line in resolv.splitlines()
                if line.startswith("nameserver") and len(line.split()) > 1]

    def _write_files(self, container: Container, first: Endpoint | None, embedded: bool) -> None:
        directory = os.path.join(self._container_dir, container.id)
        os.makedirs(directory, mode=0o710, exist_ok=True)
        config, hc = container.config, container.host_config
        default = self._default()
        gateway = (first.gateway if first is not None and first.gateway
                   else default.gateway if default is not None else "")
        extra = parse_extra_hosts(hc.get("ExtraHosts") or [], gateway)
        _write(os.path.join(directory, "hosts"),
               hosts_content(str(config.get("Hostname") or container.id[:12]),
                             str(config.get("Domainname") or ""),
                             first.address if first is not None else "", extra))
        _write(os.path.join(directory, "resolv.conf"),
               resolv_content(_read(self.config.host_resolv), embedded=embedded,
                              servers=[str(s) for s in hc.get("Dns") or []],
                              search=[str(s) for s in hc.get("DnsSearch") or []],
                              options=[str(s) for s in hc.get("DnsOptions") or []]))

    def _edit_hosts(self, container_id: str, change: Any) -> None:
        path = os.path.join(self._container_dir, container_id, "hosts")
        _rewrite(path, change(_read(path)))

    def _files_after_connect(self, container: Container, network: Network,
                             endpoint: Endpoint | None) -> None:
        """A running container joined ``network``: its hosts file names it at the new
        address, and its resolv.conf turns to the embedded DNS if it did not use it yet
        (Docker starts the resolver at the first network that needs it)."""
        if endpoint is not None and endpoint.address:
            hostname = str(container.config.get("Hostname") or container.id[:12])
            domainname = str(container.config.get("Domainname") or "")
            self._edit_hosts(container.id, lambda text: hosts_with_address(
                text, endpoint.address, hostname, domainname))
        resolv = os.path.join(self._container_dir, container.id, "resolv.conf")
        current = _read(resolv)
        if network.dns and self._dns is not None and current and \
                f"nameserver {EMBEDDED_DNS}" not in current:
            hc = container.host_config
            _rewrite(resolv, resolv_content(
                _read(self.config.host_resolv), embedded=True,
                servers=[str(s) for s in hc.get("Dns") or []],
                search=[str(s) for s in hc.get("DnsSearch") or []],
                options=[str(s) for s in hc.get("DnsOptions") or []]))

    # ------------------------------------------------------------------ containers: stop

    async def teardown(self, container_id: str) -> None:
        """Undo :meth:`setup` (idempotent: what is already gone is skipped)."""
        if not self._endpoints_of(container_id) and not os.path.exists(
                self._netns.path(container_id)):
            return
        async with self._lock:
            await self._teardown_locked(container_id)

    async def _teardown_locked(self, container_id: str) -> None:
        phases = _Phases()
        if self._dns is not None:
            await self._dns.stop(container_id)
        endpoints = self._endpoints_of(container_id)
        # Deleting a veth pair costs 20-30 ms here (the kernel unregisters both devices and
        # waits for RCU grace periods). When the container's namespace dies with the file
        # removed below (no other container joined it), the kernel deletes the pairs in it
        # by itself, after this returns; a new pair of the same name deletes a dying one.
        netns_path = self._netns.path(container_id)
        namespace_dies = os.path.exists(netns_path) and not await asyncio.to_thread(
            self._netns.shared, container_id)
        for endpoint in endpoints:
            await self._leave(endpoint, delete_link=not namespace_dies)
        phases.mark("endpoints")
        await asyncio.to_thread(self._netns.remove, container_id)
        phases.mark("netns")
        if endpoints:
            await self._sync_firewall()
        phases.mark("firewall")
        log.debug("network teardown of %s took %s", container_id[:12], phases)

    async def _leave(self, endpoint: Endpoint, delete_link: bool = True) -> None:
        network = self._networks.get(endpoint.network_id)
        portmod.unpublish([PortMapping.from_json(p) for p in endpoint.ports],
                          self._reservations)
        try:
            if network is not None and network.driver == CNI:
                netns = self._netns.path(endpoint.container_id)
                await asyncio.to_thread(
                    self._cni_runner(network).delete, endpoint.container_id,
                    netns if os.path.exists(netns) else "", endpoint.ifname,
                    endpoint.cni_result or None)
            elif endpoint.host_ifname and delete_link:
                await asyncio.to_thread(self._driver.leave, endpoint)
        except (OSError, errdefs.SampanError):
            log.exception("releasing endpoint %s of %s", endpoint.endpoint_id,
                          endpoint.container_id)
        await asyncio.to_thread(self._state.remove_endpoint, endpoint.network_id,
                                endpoint.container_id)
        self._endpoints.pop((endpoint.network_id, endpoint.container_id), None)

    def _endpoints_of(self, container_id: str) -> list[Endpoint]:
        found = [e for e in self._endpoints.values() if e.container_id == container_id]
        return sorted(found, key=lambda e: e.ifname)

    async def _sync_firewall(self) -> None:
        mappings = [PortMapping.from_json(p) for e in self._endpoints.values() for p in e.ports]
        networks = [n for n in self._networks.values() if n.driver == BRIDGE]
        if not networks and not mappings:
            return
        await asyncio.to_thread(self._driver.sync_firewall, networks, mappings,
                                list(self._endpoints.values()))

    # ------------------------------------------------------------------ connect, disconnect

    async def network_connect(self, ref: str, container_ref: str,
                              endpoint_config: Mapping[str, Any]) -> None:
        network = self.find(ref)
        container = self._directory().get(container_ref)
        mode = self.primary_name(container.host_config)
        if mode in (HOST, NONE) or mode.startswith("container:"):
            raise errdefs.Forbidden(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network")
        if network.predefined and network.driver != BRIDGE:
            raise errdefs.Forbidden("container cannot be disconnected from host network or "
                                    "connected to host network")
        doc = _attachment_doc(endpoint_config)
        if doc.get("IPv4Address") and network.predefined:
            raise errdefs.InvalidParameter(
                "user specified IP address is supported on user defined networks only")
        async with self._lock:
            if network.id in self._attached_ids(container):
                raise errdefs.Forbidden(
                    f"endpoint with name {container.name.lstrip('/')} already exists in "
                    f"network {network.name}")
            await asyncio.to_thread(self._state.set_attachment, container.id, network.id, doc)
            if container.state.status not in (RUNNING, PAUSED):
                return
            netns = self._netns.path(container.id)
            if not os.path.exists(netns):
                netns = await asyncio.to_thread(self._netns.create, container.id)
            index = len(self._endpoints_of(container.id))
            try:
                await self._join(container, network, doc, f"eth{index}", netns, publish=False)
            except BaseException:
                endpoint = self._endpoints.get((network.id, container.id))
                if endpoint is not None:
                    await self._leave(endpoint)
                await asyncio.to_thread(self._state.remove_attachment, container.id,
                                        network.id)
                raise
            await self._sync_firewall()
            if network.dns and self._dns is not None:
                await asyncio.to_thread(self._driver.loopback_up, netns)
                await self._dns.serve(container.id, netns, self._upstreams(container))
            endpoint = self._endpoints.get((network.id, container.id))
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self._files_after_connect, container, network,
                                        endpoint)

    async def network_disconnect(self, ref: str, container_ref: str, force: bool) -> None:
        network = self.find(ref)
        try:
            container = self._directory().get(container_ref)
        except errdefs.NotFound:
            if not force:
                raise
            return
        async with self._lock:
            if network.id not in self._attached_ids(container):
                raise errdefs.Forbidden(
                    f"container {container.id} is not connected to network {network.name}")
            endpoint = self._endpoints.get((network.id, container.id))
            if endpoint is not None:
                await self._leave(endpoint)
                await self._sync_firewall()
                if endpoint.address:
                    with contextlib.suppress(OSError):
                        await asyncio.to_thread(self._edit_hosts, container.id,
                                                lambda text: hosts_without_address(
                                                    text, endpoint.address))
            await asyncio.to_thread(self._state.remove_attachment, container.id, network.id)

    # ------------------------------------------------------------------ inspect shapes

    def settings(self, container: Container) -> dict[str, Any]:
        """Docker's ``NetworkSettings`` for container inspect."""
        endpoints = self._endpoints_of(container.id)
        running = container.state.status in (RUNNING, PAUSED)
        networks: dict[str, Any] = {}
        for _, network_id, doc in self._state.attachments(container.id):
            network = self._networks.get(network_id)
            if network is None:
                continue
            endpoint = self._endpoints.get((network_id, container.id)) if running else None
            networks[network.name] = _endpoint_json(network, endpoint, doc)
        mode = self.primary_name(container.host_config)
        if not networks and (mode in (HOST, NONE) or mode == DEFAULT_NETWORK):
            networks[mode] = _endpoint_json(None, None, {})
        primary = endpoints[0] if endpoints and running else None
        mappings = [PortMapping.from_json(p) for e in endpoints for p in e.ports] \
            if running else []
        default = self._default()
        return {
            "Bridge": "", "SandboxID": container.id if running else "",
            "SandboxKey": self._netns.path(container.id) if running and endpoints else "",
            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": portmod.ports_json(container.config.get("ExposedPorts"), mappings),
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": primary.endpoint_id if primary and _is_default(primary, default)
            else "",
            "Gateway": primary.gateway if primary and _is_default(primary, default) else "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": primary.address if primary and _is_default(primary, default) else "",
            "IPPrefixLen": primary.prefixlen if primary and _is_default(primary, default)
            else 0,
            "IPv6Gateway": "",
            "MacAddress": primary.mac if primary and _is_default(primary, default) else "",
            "Networks": networks,
        }

    def summary(self, container: Container) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``Ports`` and ``NetworkSettings.Networks`` for the container list."""
        settings = self.settings(container)
        running = container.state.status in (RUNNING, PAUSED)
        mappings = [PortMapping.from_json(p) for e in self._endpoints_of(container.id)
                    for p in e.ports] if running else []
        return (portmod.summary_ports(mappings, container.config.get("ExposedPorts")),
                settings["Networks"])

    async def close(self) -> None:
        """Daemon shutdown: stop answering DNS (containers keep their addresses and ports:
        the next sampand takes them over) and close the database."""
        if self._chain_watch is not None:
            await self._chain_watch.stop()
        if self._dns is not None:
            await self._dns.stop_all()
        self._state.close()

    def snapshot(self) -> dict[str, Any]:
        """What the leak checks compare: allocations, endpoints, namespace files."""
        return {"allocations": self._state.all_allocations(),
                "endpoints": sorted(self._endpoints),
                "netns": self._netns.names()}


class _Phases:
    """Wall-clock time per phase, for one debug line ("12.3 ms (netns 1.0, ...)")."""

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._parts: list[str] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self._parts.append(f"{name} {(now - self._last) * 1000:.1f}")
        self._last = now

    def __str__(self) -> str:
        return f"{(self._last - self._start) * 1000:.1f} ms ({', '.join(self._parts)})"


def _is_default(endpoint: Endpoint, default: Network | None) -> bool:
    return default is not None and endpoint.network_id == default.id


def _endpoints_config(networking_config: Mapping[str, Any]) -> dict[str, Any]:
    """``NetworkingConfig.EndpointsConfig`` with the CLI's ``default`` key read as the
    default bridge."""
    endpoints = (networking_config or {}).get("EndpointsConfig") or {}
    return {DEFAULT_NETWORK if name == "default" else str(name): settings
            for name, settings in endpoints.items()}


def _attachment_doc(settings: Mapping[str, Any]) -> dict[str, Any]:
    ipam = (settings or {}).get("IPAMConfig") or {}
    return {"Aliases": [str(a) for a in (settings or {}).get("Aliases") or []],
            "IPv4Address": str(ipam.get("IPv4Address") or ""),
            "DriverOpts": (settings or {}).get("DriverOpts") or None}


def _endpoint_json(network: Network | None, endpoint: Endpoint | None,
                   doc: Mapping[str, Any]) -> dict[str, Any]:
    ipam = {"IPv4Address": doc["IPv4Address"]} if doc.get("IPv4Address") else None
    return {
        "IPAMConfig": ipam, "Links": None, "Aliases": list(doc.get("Aliases") or []) or None,
        "MacAddress": endpoint.mac if endpoint else "", "DriverOpts": doc.get("DriverOpts"),
        "NetworkID": network.id if network else "",
        "EndpointID": endpoint.endpoint_id if endpoint else "",
        "Gateway": endpoint.gateway if endpoint else "",
        "IPAddress": endpoint.address if endpoint else "",
        "IPPrefixLen": endpoint.prefixlen if endpoint else 0,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": list(endpoint.dns_names) or None if endpoint else None,
    }


def _bip_matches(network: Network, bip: str) -> bool:
    interface = ipaddress.IPv4Interface(bip)
    return network.subnet == str(interface.network) and network.gateway == str(interface.ip)


def _labels_ok(labels: Mapping[str, str], filters: Mapping[str, Sequence[str]]) -> bool:
    for wanted, positive in ((filters.get("label") or [], True),
                             (filters.get("label!") or [], False)):
        for item in wanted:
            key, sep, value = item.partition("=")
            present = key in labels and (not sep or labels[key] == value)
            if present != positive:
                return False
    return True


def _matches(network: Network, filters: Mapping[str, Sequence[str]], in_use: bool) -> bool:
    if filters.get("name") and not any(n in network.name for n in filters["name"]):
        return False
    if filters.get("id") and not any(network.id.startswith(i) for i in filters["id"]):
        return False
    if filters.get("driver") and network.driver not in filters["driver"]:
        return False
    if filters.get("scope") and "local" not in filters["scope"]:
        return False
    if filters.get("type"):
        kind = "builtin" if network.predefined else "custom"
        if kind not in filters["type"]:
            return False
    if filters.get("dangling"):
        want = filters["dangling"][0].lower() in ("1", "true")
        if network.predefined or in_use == want:
            return False
    return _labels_ok(network.labels, {"label": filters.get("label") or []})
