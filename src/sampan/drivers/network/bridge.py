"""The bridge driver: turns network and endpoint records into plans and has them applied,
and keeps the firewall in step with the networks and published ports."""

from __future__ import annotations

from collections.abc import Sequence

from sampan.drivers.network.executor import Executor
from sampan.drivers.network.firewall import DockerUserRules, NftFirewall, render_ruleset
from sampan.drivers.network.model import Endpoint, Network, PortMapping
from sampan.drivers.network.plan import (
    LinkUp,
    plan_bridge,
    plan_bridge_removal,
    plan_endpoint,
    plan_endpoint_removal,
)

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


class BridgeDriver:
    def __init__(self, executor: Executor, firewall: NftFirewall, docker_user: DockerUserRules,
                 table: str, ip_forward_path: str = IP_FORWARD) -> None:
        self._executor = executor
        self._firewall = firewall
        self._docker_user = docker_user
        self.table = table
        self._ip_forward_path = ip_forward_path
        # What was applied last: a container without published ports on a network with
        # icc on changes neither, so its start and exit skip ``nft`` and ``iptables``
        # (about 20 ms of process starts and netlink each).
        self._applied_ruleset: str | None = None
        self._docker_user_bridges: list[str] | None = None

    def create(self, network: Network) -> None:
        self._executor.apply(plan_bridge(network))
        if network.masquerade and not network.internal:
            self._enable_forwarding()

    def _enable_forwarding(self) -> None:
        """Outbound traffic is routed from the bridge to the host's interfaces: like
        dockerd, turn IPv4 forwarding on when it is off (never off again: others may rely
        on it)."""
        try:
            with open(self._ip_forward_path) as handle:
                if handle.read().strip() == "1":
                    return
            with open(self._ip_forward_path, "w") as handle:
                handle.write("1")
        except OSError:
            pass

    def remove(self, network: Network) -> None:
        self._executor.apply(plan_bridge_removal(network))

    def join(self, network: Network, endpoint: Endpoint, netns: str) -> None:
        self._executor.apply(plan_endpoint(network, endpoint, netns))

    def loopback_up(self, netns: str) -> None:
        """``lo`` up in ``netns`` (the embedded DNS listens there; CNI plugins may leave it
        down)."""
        self._executor.apply([LinkUp("lo", netns)])

    def leave(self, endpoint: Endpoint) -> None:
        self._executor.apply(plan_endpoint_removal(endpoint))

    def sync_firewall(self, networks: Sequence[Network], ports: Sequence[PortMapping],
                      endpoints: Sequence[Endpoint] = ()) -> None:
        """Replace the engine's tables with the rules for ``networks``, ``ports`` and the
        bridge ports of ``endpoints``."""
        bridged = [n for n in networks if n.bridge and n.subnet and bridge_exists(n.bridge)]
        by_id = {n.id: n.bridge for n in bridged}
        members: dict[str, list[str]] = {}
        for endpoint in endpoints:
            if endpoint.network_id in by_id and endpoint.host_ifname:
                members.setdefault(by_id[endpoint.network_id], []).append(endpoint.host_ifname)
        ruleset = render_ruleset(bridged, ports, self.table, members)
        if ruleset != self._applied_ruleset:
            self._applied_ruleset = None  # unknown until nft succeeds
            self._firewall.apply(ruleset)
            self._applied_ruleset = ruleset
        bridges = sorted(n.bridge for n in bridged)
        if bridges != self._docker_user_bridges:
            self._docker_user_bridges = None
            self._docker_user.sync(bridges)
            self._docker_user_bridges = bridges

    def resync_docker_user(self) -> None:
        """dockerd made its ``DOCKER-USER`` chain (it started after us, or again): put the
        rules for the bridges of the last :meth:`sync_firewall` there."""
        if self._docker_user_bridges is not None:
            self._docker_user.sync(self._docker_user_bridges)

    def forget_applied(self) -> None:
        """The next :meth:`sync_firewall` applies everything again (after a change made
        behind the driver's back)."""
        self._applied_ruleset = None
        self._docker_user_bridges = None


def bridge_exists(name: str) -> bool:
    """Whether the link exists in this process's network namespace (``/proc/self/net`` is
    per namespace; ``/sys/class/net`` shows the namespace sysfs was mounted in)."""
    with open("/proc/self/net/dev") as handle:
        return any(line.split(":", 1)[0].strip() == name for line in handle.readlines()[2:])
