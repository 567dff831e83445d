"""Issue 5's acceptance: the network driver through the docker CLI against a real sampand.

Each daemon gets its own default bridge (``snb<random>``) and nft tables
(``sampan_<random>``) so nothing is shared with other daemons on the host; the fixture
removes the containers, networks, bridge and tables, pass or fail. Traffic stays on loopback
and on bridges and namespaces the tests create.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sampand_harness import BUSYBOX, SHARED_IMAGES, Sampand, stop_pid

NGINX = SHARED_IMAGES / "nginx.tar.gz"
REDIS = SHARED_IMAGES / "redis.tar.gz"
HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 80"


class NetworkedSampand(Sampand):
    """A sampand with a default bridge and nft tables of its own, optionally run inside a
    network namespace (``netns``)."""

    def __init__(self, netns: str = "") -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"snb{self.tag}"
        self.table = f"sampan_{self.tag}"
        self.netns = netns
        super().__init__(extra_args=("--bridge", self.bridge, "--firewall-table", self.table))

    def argv(self) -> list[str]:
        prefix = ["nsenter", f"--net={self.netns}"] if self.netns else []
        return [*prefix, *super().argv()]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.process is not None and self.process.poll() is None:
                ids = self.docker("ps", "-aq").stdout.decode().split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60)
                self.docker("network", "prune", "-f")
        super().close()
        inside = ["nsenter", f"--net={self.netns}"] if self.netns else []
        subprocess.run([*inside, "ip", "link", "del", self.bridge], capture_output=True,
                       check=False)
        for family in ("ip", "bridge"):
            subprocess.run([*inside, "nft", "delete", "table", family, self.table],
                           capture_output=True, check=False)

    def ip_of(self, ref: str, network: str = "") -> str:
        settings = self.inspect(ref)["NetworkSettings"]
        if network:
            return str(settings["Networks"][network]["IPAddress"])
        return str(settings["IPAddress"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, attempts: int = 40) -> str:
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return str(response.read().decode())
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"cannot fetch {url}")


@pytest.fixture(scope="module")
def daemon() -> Iterator[NetworkedSampand]:
    instance = NetworkedSampand()
    with instance:
        for image in (BUSYBOX, NGINX, REDIS):
            instance.ok("load", "-q", "-i", str(image), timeout=180)
        yield instance


def test_published_ports_docker_port_and_the_default_bridge(daemon: NetworkedSampand) -> None:
    port = free_port()
    web = daemon.ok("run", "-d", "-p", f"127.0.0.1:{port}:80", "nginx:bookworm").strip()
    assert "nginx:bookworm fixture" in fetch(f"http://127.0.0.1:{port}/")
    assert daemon.ok("port", web, "80").strip() == f"127.0.0.1:{port}"
    published = daemon.ok("run", "-d", "-P", "nginx:bookworm").strip()
    ports = daemon.inspect(published)["NetworkSettings"]["Ports"]["80/tcp"]
    assert ports[0]["HostIp"] == "0.0.0.0" and int(ports[0]["HostPort"]) > 1024
    assert "nginx:bookworm fixture" in fetch(f"http://127.0.0.1:{ports[0]['HostPort']}/")
    address = daemon.ip_of(web)
    assert daemon.inspect(web)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == address
    page = daemon.ok("run", "--rm", "busybox", "sh", "-c", HTTP_GET.format(host=address))
    assert "nginx:bookworm fixture" in page
    # A port already held is refused at start, with a clear message.
    failed = daemon.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "9")
    assert failed.returncode != 0 and b"already allocated" in failed.stderr
    daemon.ok("rm", "-f", web, published)


def test_user_defined_networks_resolve_names_and_stay_apart(daemon: NetworkedSampand) -> None:
    net = f"front{daemon.tag}"
    other = f"back{daemon.tag}"
    daemon.ok("network", "create", net)
    daemon.ok("network", "create", other)
    redis = daemon.ok("run", "-d", "--name", f"redis{daemon.tag}", "--network", net,
                      "redis:bookworm").strip()
    daemon.ok("run", "-d", "--name", f"web{daemon.tag}", "--network", net,
              "--network-alias", "webalias", "nginx:bookworm")
    client = daemon.ok("run", "-d", "--network", net, "busybox", "sleep", "300").strip()
    ping = f"printf 'PING\\r\\n' | nc -w 3 redis{daemon.tag} 6379"
    deadline = time.monotonic() + 20
    while "+PONG" not in daemon.ok("exec", client, "sh", "-c", ping + " || true"):
        assert time.monotonic() < deadline, "redis never answered by name"
        time.sleep(0.5)
    assert "nginx:bookworm fixture" in daemon.ok("exec", client, "sh", "-c",
                                                 HTTP_GET.format(host="webalias"))
    inspected = json.loads(daemon.ok("network", "inspect", net))[0]
    assert redis in inspected["Containers"] and client in inspected["Containers"]
    # A container on another network can reach neither by name nor by address.
    stranger = daemon.docker("run", "--rm", "--network", other, "busybox", "sh", "-c",
                             f"nc -w 2 {daemon.ip_of(redis, net)} 6379 </dev/null")
    assert stranger.returncode != 0
    lookup = daemon.docker("run", "--rm", "--network", other, "busybox", "nslookup",
                           f"redis{daemon.tag}")
    assert daemon.ip_of(redis, net) not in lookup.stdout.decode()
    # Disconnected: the name is gone and the address unreachable.
    daemon.ok("network", "disconnect", net, redis)
    after = daemon.docker("exec", client, "sh", "-c", ping)
    assert b"+PONG" not in after.stdout
    removed = daemon.docker("network", "rm", net)
    assert removed.returncode != 0 and b"active endpoints" in removed.stderr


def snapshot(daemon: NetworkedSampand) -> dict[str, object]:
    links = sorted(os.listdir("/sys/class/net"))
    rules = subprocess.run(["nft", "list", "table", "ip", daemon.table], capture_output=True,
                           text=True, check=False).stdout
    with sqlite3.connect(daemon.root / "data" / "network.db") as db:
        allocations = sorted(db.execute("SELECT network_id, address FROM allocations"))
        endpoints = sorted(db.execute("SELECT network_id, container_id FROM endpoints"))
    netns_dir = daemon.root / "exec" / "netns"
    netns = sorted(os.listdir(netns_dir)) if netns_dir.exists() else []
    return {"links": [n for n in links if n.startswith("vs") or n == daemon.bridge],
            "rules": [line for line in rules.splitlines() if "dnat" in line],
            "allocations": allocations, "endpoints": endpoints, "netns": netns}


def test_no_leaks_after_many_cycles_failures_and_kill_9(daemon: NetworkedSampand) -> None:
    daemon.ok("run", "--rm", "busybox", "true")  # the default bridge exists from here on
    before = snapshot(daemon)
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    busy = held.getsockname()[1]
    try:
        for cycle in range(50):
            if cycle % 10 == 3:  # the host port is taken: the start fails
                result = daemon.docker("run", "-d", "-p", f"127.0.0.1:{busy}:80", "busybox",
                                       "sleep", "60")
                assert result.returncode != 0
                ids = daemon.ok("ps", "-aq", "--filter", "status=created").split()
                daemon.ok("rm", "-f", *ids)
            elif cycle % 10 == 7:  # the command does not exist: the start fails
                result = daemon.docker("run", "-d", "-p", "127.0.0.1::80", "busybox",
                                       "/no/such/program")
                assert result.returncode != 0
                ids = daemon.ok("ps", "-aq", "--filter", "status=created").split()
                ids += daemon.ok("ps", "-aq", "--filter", "status=exited").split()
                daemon.ok("rm", "-f", *ids)
            else:
                cid = daemon.ok("run", "-d", "-p", "127.0.0.1::80", "-p", "127.0.0.1::53/udp",
                                "busybox", "sleep", "60").strip()
                daemon.ok("rm", "-f", cid)
    finally:
        held.close()
    assert snapshot(daemon) == before
    survivor = daemon.ok("run", "-d", "-p", f"127.0.0.1:{free_port()}:80",
                         "busybox", "sleep", "300").strip()
    daemon.kill9()
    daemon.start()
    assert daemon.inspect(survivor)["State"]["Running"]
    assert daemon.ip_of(survivor)
    daemon.ok("rm", "-f", survivor)
    assert snapshot(daemon) == before


@pytest.fixture
def throwaway_netns() -> Iterator[str]:
    name = f"snt{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def inside(netns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


FETCH = """
import sys, time, urllib.request
for _ in range(20):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode()); break
    except OSError:
        time.sleep(0.25)
"""


def test_published_ports_of_sampand_and_dockerd_work_side_by_side(
        throwaway_netns: str) -> None:
    """dockerd with iptables on (FORWARD policy DROP, its chains) and sampand in one
    namespace: both engines' published ports answer and sampand's containers still reach
    each other across the bridge."""
    base = Path(tempfile.mkdtemp(prefix="snd.", dir="/tmp"))
    docker_sock = base / "docker.sock"
    (base / "daemon.json").write_text("{}")
    env = {**os.environ, "DOCKER_HOST": f"unix://{docker_sock}",
           "DOCKER_CONFIG": str(base / "cli")}
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    dockerd = subprocess.Popen(
        ["nsenter", f"--net={throwaway_netns}", "unshare", "-m", "--propagation", "private",
         "dockerd", "--config-file", str(base / "daemon.json"), "--data-root",
         str(base / "docker"), "--exec-root", str(base / "dexec"), "--pidfile",
         str(base / "dockerd.pid"), "-H", f"unix://{docker_sock}", "--cgroup-parent",
         f"/{base.name}", "--bip", "172.26.0.1/16"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sampand = NetworkedSampand(netns=throwaway_netns)
    try:
        deadline = time.monotonic() + 60
        while b"API listen on" not in (base / "dockerd.log").read_bytes():
            assert dockerd.poll() is None and time.monotonic() < deadline, \
                (base / "dockerd.log").read_text()[-2000:]
            time.sleep(0.2)
        docker = ["docker"]
        subprocess.run([*docker, "load", "-q", "-i", str(BUSYBOX)], env=env, check=True,
                       capture_output=True)
        # dockerd sets FORWARD's policy to DROP when it finds forwarding off; a new
        # namespace may inherit forwarding on, so put dockerd's policy in force here.
        assert inside(throwaway_netns, "iptables", "-P", "FORWARD", "DROP").returncode == 0
        policy = inside(throwaway_netns, "iptables", "-S", "FORWARD").stdout
        assert "-P FORWARD DROP" in policy and "-j DOCKER-USER" in policy
        theirs = free_port()
        subprocess.run([*docker, "run", "-d", "-p", f"127.0.0.1:{theirs}:80", "busybox", "sh",
                        "-c", "echo dockerd-page > /tmp/index.html; httpd -f -p 80 -h /tmp"],
                       env=env, check=True, capture_output=True)
        sampand.__enter__()
        sampand.ok("load", "-q", "-i", str(NGINX), timeout=180)
        sampand.ok("load", "-q", "-i", str(BUSYBOX))
        ours = free_port()
        web = sampand.ok("run", "-d", "-p", f"127.0.0.1:{ours}:80", "nginx:bookworm").strip()
        assert "dockerd-page" in inside(
            throwaway_netns, sys.executable, "-c", FETCH, f"http://127.0.0.1:{theirs}/").stdout
        assert "nginx:bookworm fixture" in inside(
            throwaway_netns, sys.executable, "-c", FETCH, f"http://127.0.0.1:{ours}/").stdout, \
            inside(throwaway_netns, "nft", "list", "ruleset").stdout
        page = sampand.ok("run", "--rm", "busybox", "sh", "-c",
                          HTTP_GET.format(host=sampand.ip_of(web)))
        assert "nginx:bookworm fixture" in page
    finally:
        sampand.close()
        with contextlib.suppress(Exception):
            ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True,
                                 text=True, timeout=30).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True,
                               timeout=60)
        stop_pid(dockerd.pid, timeout=20)
        log.close()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(base))]
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                for leaf in sorted((controller / base.name).glob("*"), reverse=True):
                    leaf.rmdir()
                (controller / base.name).rmdir()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_cni_network_gives_an_address_the_host_reaches(daemon: NetworkedSampand) -> None:
    data_dir = tempfile.mkdtemp(prefix="snc.", dir="/tmp")
    bridge = f"cni{daemon.tag}"
    third = int(daemon.tag[:2], 16) % 200 + 20
    conflist = {"cniVersion": "1.0.0", "name": f"cni{daemon.tag}", "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": data_dir,
                  "ranges": [[{"subnet": f"10.{third}.93.0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}}]}
    name = f"cni{daemon.tag}"
    try:
        daemon.ok("network", "create", "-d", "cni", "-o",
                  f"sampan.cni.conflist.json={json.dumps(conflist)}", name)
        cid = daemon.ok("run", "-d", "--network", name, "busybox", "sh", "-c",
                        "echo cni-page > /tmp/index.html; httpd -f -p 8080 -h /tmp").strip()
        address = daemon.ip_of(cid, name)
        assert address.startswith(f"10.{third}.93.")
        assert fetch(f"http://{address}:8080/index.html").strip() == "cni-page"
        daemon.ok("rm", "-f", cid)
        assert not any(Path(data_dir, conflist["name"]).glob(f"10.{third}.*"))  # DEL ran
        daemon.ok("network", "rm", name)
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", data_dir], check=False)
