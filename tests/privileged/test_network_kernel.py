"""The network driver's executors on the real kernel: namespace files, bridges and veth
pairs through netlink, the nftables ruleset (DNAT from 127.0.0.1 into a namespace), and the
embedded DNS server answering inside a namespace.

Every test owns a unique prefix (``snt<random>``) for its links, nft table and namespace
files, and removes them in a finalizer, pass or fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sampan.drivers.network.bridge import BridgeDriver
from sampan.drivers.network.dns import EmbeddedDns
from sampan.drivers.network.executor import NetlinkExecutor
from sampan.drivers.network.firewall import DockerUserRules, NftFirewall
from sampan.drivers.network.model import Endpoint, Network, PortMapping
from sampan.drivers.network.netns import NetnsFiles, socket_in_netns
from sampan.drivers.network.plan import host_ifname, mac_for

pytestmark = pytest.mark.privileged

# A small TCP server that answers its own name, run inside a namespace with nsenter.
SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello from the namespace"); c.close()
"""


@dataclass
class Lab:
    prefix: str
    netns: NetnsFiles
    driver: BridgeDriver
    firewall: NftFirewall
    network: Network
    processes: list[subprocess.Popen[bytes]]

    def endpoint(self, name: str, address: str) -> Endpoint:
        return Endpoint(network_id=self.network.id, container_id=name, endpoint_id=name,
                        ifname="eth0", host_ifname=host_ifname(self.prefix + name, "n"),
                        address=address, prefixlen=24, gateway=self.network.gateway,
                        mac=mac_for(address))

    def serve_in(self, netns_path: str, port: int) -> None:
        process = subprocess.Popen(
            ["nsenter", f"--net={netns_path}", sys.executable, "-c", SERVER, str(port)],
            stdout=subprocess.PIPE)
        self.processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def lab() -> Iterator[Lab]:
    prefix = "snt" + secrets.token_hex(3)
    table = f"sampan_{prefix}"
    directory = tempfile.mkdtemp(prefix=f"{prefix}.", dir="/tmp")
    netns = NetnsFiles(os.path.join(directory, "netns"))
    firewall = NftFirewall()
    driver = BridgeDriver(NetlinkExecutor(), firewall, DockerUserRules(table), table)
    third = int(prefix[3:5], 16) % 200 + 20
    network = Network(id="n", name=prefix, driver="bridge", created=0,
                      subnet=f"10.{third}.91.0/24", gateway=f"10.{third}.91.1",
                      bridge=f"{prefix}b")
    lab = Lab(prefix, netns, driver, firewall, network, [])
    try:
        yield lab
    finally:
        for process in lab.processes:
            process.kill()
            process.wait()
        for name in links():
            if name.startswith(prefix) or name in {host_ifname(prefix + n, "n")
                                                   for n in ("a", "b")}:
                subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
        for family in ("ip", "bridge"):
            subprocess.run(["nft", "delete", "table", family, table], check=False,
                           capture_output=True)
        for name in netns.names():
            netns.remove(name)
        subprocess.run(["umount", "-l", os.path.join(directory, "netns")], check=False,
                       capture_output=True)
        subprocess.run(["rm", "-rf", directory], check=False)


def connect(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=5) as sock:
        return sock.recv(100)


def test_namespace_files_hold_a_namespace_without_any_process(lab: Lab) -> None:
    path = lab.netns.create("a")
    inode = os.stat(path).st_ino
    assert inode != os.stat("/proc/self/ns/net").st_ino  # a new namespace, not ours
    assert os.stat(lab.netns.create("a")).st_ino == inode  # idempotent
    shown = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link"],
                           capture_output=True, text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in shown.splitlines()] == ["lo"]
    assert os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{os.getpid()}/ns/net")
    lab.netns.remove("a")
    assert not os.path.exists(path)
    lab.netns.remove("a")  # already gone: still fine


def test_bridge_and_endpoints_connect_a_namespace_to_the_host_and_go_away(lab: Lab) -> None:
    before = links()
    lab.driver.create(lab.network)
    lab.driver.create(lab.network)  # re-applying after a crash is harmless
    assert lab.network.bridge in links()
    assert Path(f"/proc/sys/net/ipv4/conf/{lab.network.bridge}/route_localnet").read_text() \
        .strip() == "1"
    path = lab.netns.create("a")
    address = lab.network.gateway.rsplit(".", 1)[0] + ".2"
    endpoint = lab.endpoint("a", address)
    lab.driver.join(lab.network, endpoint, path)
    assert endpoint.host_ifname in links()
    master = os.readlink(f"/sys/class/net/{endpoint.host_ifname}/master")
    assert master.endswith("/" + lab.network.bridge)
    inside = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "-4", "addr"],
                            capture_output=True, text=True, check=True).stdout
    assert f"inet {address}/24" in inside
    route = subprocess.run(["nsenter", f"--net={path}", "ip", "route", "show", "default"],
                           capture_output=True, text=True, check=True).stdout
    assert f"via {lab.network.gateway}" in route
    lab.serve_in(path, 8080)
    assert connect(address, 8080) == b"hello from the namespace"
    lab.driver.leave(endpoint)
    lab.driver.leave(endpoint)  # already gone: still fine
    lab.driver.remove(lab.network)
    lab.netns.remove("a")
    assert links() == before


def test_published_port_on_loopback_is_dnatted_into_the_namespace(lab: Lab) -> None:
    lab.driver.create(lab.network)
    path = lab.netns.create("a")
    address = lab.network.gateway.rsplit(".", 1)[0] + ".2"
    endpoint = lab.endpoint("a", address)
    lab.driver.join(lab.network, endpoint, path)
    lab.serve_in(path, 80)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    mapping = PortMapping("tcp", "127.0.0.1", port, 80, address, lab.network.bridge)
    lab.driver.sync_firewall([lab.network], [mapping], [endpoint])
    rules = lab.firewall.ruleset(lab.driver.table)
    assert f"dnat to {address}:80" in rules
    assert connect("127.0.0.1", port) == b"hello from the namespace"
    lab.driver.sync_firewall([lab.network], [], [endpoint])
    assert "dnat to" not in lab.firewall.ruleset(lab.driver.table)
    with pytest.raises(OSError):
        connect("127.0.0.1", port)


def dns_query(name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"


ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(bytes.fromhex(sys.argv[1]), ("127.0.0.11", 53))
print(s.recv(512).hex())
"""


def test_embedded_dns_answers_inside_the_namespace(lab: Lab) -> None:
    path = lab.netns.create("a")
    subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
    names = {"redis": ["10.1.2.3"]}
    dns = EmbeddedDns(lambda container, name: names.get(name) if container == "a" else None,
                      socket_in_netns)

    async def scenario() -> bytes:
        await dns.serve("a", path, [])
        try:
            process = await asyncio.create_subprocess_exec(
                "nsenter", f"--net={path}", sys.executable, "-c", ASK,
                dns_query("redis").hex(), stdout=asyncio.subprocess.PIPE)
            out, _ = await asyncio.wait_for(process.communicate(), 20)
            return bytes.fromhex(out.decode().strip())
        finally:
            await dns.stop_all()

    reply = asyncio.run(scenario())
    assert struct.unpack("!H", reply[6:8])[0] == 1
    assert reply.endswith(socket.inet_aton("10.1.2.3"))
    # The server listened in the namespace only: the host's 127.0.0.11 has nobody there.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.3)
    probe.sendto(dns_query("redis"), ("127.0.0.11", 53))
    with pytest.raises(OSError):
        probe.recv(512)
    probe.close()
