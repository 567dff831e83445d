"""Builds sampand's network service from its options (wiring only: the pieces live in
``sampan.drivers.network`` and ``sampan.daemon.networks``)."""

from __future__ import annotations

import os

from sampan.daemon.networks import NetworkConfig, NetworkService
from sampan.drivers.network.bridge import BridgeDriver
from sampan.drivers.network.chainwatch import DockerChainWatch
from sampan.drivers.network.dns import EmbeddedDns
from sampan.drivers.network.executor import NetlinkExecutor
from sampan.drivers.network.firewall import DockerUserRules, NftFirewall
from sampan.drivers.network.netns import NetnsFiles, socket_in_netns
from sampan.drivers.network.ports import SocketReservations
from sampan.drivers.network.state import NetworkState


def network_service(data_root: str, exec_root: str, config: NetworkConfig) -> NetworkService:
    state = NetworkState(os.path.join(data_root, "network.db"))
    driver = BridgeDriver(NetlinkExecutor(), NftFirewall(), DockerUserRules(config.table),
                          config.table)
    service = NetworkService(
        state=state, driver=driver, netns=NetnsFiles(os.path.join(exec_root, "netns")),
        dns=None, reservations=SocketReservations(), config=config,
        container_dir=os.path.join(data_root, "containers"), chain_watch=DockerChainWatch())
    service.set_dns(EmbeddedDns(service.lookup_name, socket_in_netns))
    return service
