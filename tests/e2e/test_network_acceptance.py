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


def remove_cgroup_parent(name: str) -> None:
    """dockerd leaves its ``--cgroup-parent`` directories (empty once its containers are
    gone): the containers' directories first, then the parent, in every hierarchy."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        parent = controller / name
        if not parent.is_dir():
            continue
        for leaf in [p for p in parent.iterdir() if p.is_dir()]:
            with contextlib.suppress(OSError):
                leaf.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


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


def test_connect_and_disconnect_edit_the_files_of_a_running_container(
        daemon: NetworkedSampand) -> None:
    """As Docker: connecting a running container adds its new address to its /etc/hosts and
    turns its resolv.conf to the embedded DNS (the default bridge has none); disconnecting
    takes the address out again."""
    net = f"late{daemon.tag}"
    daemon.ok("network", "create", net)
    cid = daemon.ok("run", "-d", "busybox", "sleep", "300").strip()
    try:
        assert "127.0.0.11" not in daemon.ok("exec", cid, "cat", "/etc/resolv.conf")
        daemon.ok("network", "connect", "--alias", f"lateone{daemon.tag}", net, cid)
        address = daemon.ip_of(cid, net)
        assert f"{address}\t{cid[:12]}" in daemon.ok("exec", cid, "cat", "/etc/hosts")
        assert "nameserver 127.0.0.11" in daemon.ok("exec", cid, "cat", "/etc/resolv.conf")
        assert address in daemon.ok("exec", cid, "nslookup", f"lateone{daemon.tag}")
        daemon.ok("network", "disconnect", net, cid)
        hosts = daemon.ok("exec", cid, "cat", "/etc/hosts")
        assert address not in hosts and f"\t{cid[:12]}" in hosts
    finally:
        daemon.ok("rm", "-f", cid)
        daemon.ok("network", "rm", net)


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


def assert_settles(daemon: NetworkedSampand, before: dict[str, object]) -> None:
    """The snapshot returns to ``before``. The kernel deletes a dead container's veth pair
    with its namespace, a few tens of milliseconds after the removal answered: links get
    up to 10 s, the rest must be equal at once."""
    now = snapshot(daemon)
    assert {k: v for k, v in now.items() if k != "links"} == {
        k: v for k, v in before.items() if k != "links"}
    deadline = time.monotonic() + 10
    while now["links"] != before["links"] and time.monotonic() < deadline:
        time.sleep(0.1)
        now = snapshot(daemon)
    assert now == before


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
    assert_settles(daemon, before)
    survivor = daemon.ok("run", "-d", "-p", f"127.0.0.1:{free_port()}:80",
                         "busybox", "sleep", "300").strip()
    daemon.kill9()
    daemon.start()
    assert daemon.inspect(survivor)["State"]["Running"]
    assert daemon.ip_of(survivor)
    daemon.ok("rm", "-f", survivor)
    assert_settles(daemon, before)


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
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{sys.argv[1]}: {exc}")
        time.sleep(0.2)
"""


def fetch_inside(netns: str, url: str, within: float = 30) -> subprocess.CompletedProcess[str]:
    """GET ``url`` from ``netns``, retrying until it answers or ``within`` seconds pass (the
    process's own timeout is longer, so a failure is an assertion with its reason)."""
    return inside(netns, sys.executable, "-c", FETCH, url, str(within), timeout=within + 30)


class NamespacedDockerd:
    """dockerd with iptables on (its chains, FORWARD policy DROP) and the containerd it
    starts, in ``netns`` and a private mount namespace; stopped by its PID."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.base = Path(tempfile.mkdtemp(prefix="snd.", dir="/tmp"))
        (self.base / "daemon.json").write_text("{}")
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.base / 'docker.sock'}",
                    "DOCKER_CONFIG": str(self.base / "cli")}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.base / "dockerd.log"
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                ["nsenter", f"--net={self.netns}", "unshare", "-m", "--propagation", "private",
                 "dockerd", "--config-file", str(self.base / "daemon.json"), "--data-root",
                 str(self.base / "docker"), "--exec-root", str(self.base / "dexec"),
                 "--pidfile", str(self.base / "dockerd.pid"), "-H", self.env["DOCKER_HOST"],
                 "--cgroup-parent", f"/{self.base.name}", "--bip", "172.26.0.1/16"],
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 90
        while b"API listen on" not in log.read_bytes():
            assert self.process.poll() is None and time.monotonic() < deadline, \
                log.read_text()[-2000:]
            time.sleep(0.2)

    def ok(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        assert result.returncode == 0, (f"dockerd: docker {' '.join(args)}: {result.stderr}\n"
                                        + (self.base / "dockerd.log").read_text()[-2000:])
        return result.stdout

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                ids = self.ok("ps", "-aq", timeout=30).split()
                if ids:
                    self.ok("rm", "-f", *ids, timeout=60)
            stop_pid(self.process.pid, timeout=20)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.base))]
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        remove_cgroup_parent(self.base.name)
        subprocess.run(["rm", "-rf", str(self.base)], check=False)


def firewall_state(netns: str) -> str:
    """For failure messages: both engines' rules in the namespace."""
    return (inside(netns, "iptables", "-S").stdout + inside(netns, "iptables", "-t", "nat",
                                                            "-S").stdout
            + inside(netns, "nft", "list", "ruleset").stdout)


@pytest.mark.parametrize("first", ["dockerd", "sampand"])
def test_published_ports_of_sampand_and_dockerd_work_side_by_side(
        throwaway_netns: str, first: str) -> None:
    """dockerd with iptables on (FORWARD policy DROP, its chains) and sampand in one
    namespace, either started first: both engines' published ports answer and sampand's
    containers still reach each other across the bridge (sampand's ACCEPT rules are in
    DOCKER-USER: at sampand's start when dockerd came first, through its watch of new
    chains when dockerd came second).

    Deterministic by construction: every wait is a deadline on a condition (dockerd's "API
    listen on", sampand's rules in DOCKER-USER, each page answering), ports are chosen in
    the private namespace and differ, and every command has a timeout longer than the wait
    inside it, so a failure is an assertion that shows both engines' rules."""
    dockerd = NamespacedDockerd(throwaway_netns)
    sampand = NetworkedSampand(netns=throwaway_netns)
    try:
        if first == "sampand":
            sampand.__enter__()
        dockerd.start()
        if first == "dockerd":
            sampand.__enter__()
        dockerd.ok("load", "-q", "-i", str(BUSYBOX))
        sampand.ok("load", "-q", "-i", str(NGINX), timeout=180)
        sampand.ok("load", "-q", "-i", str(BUSYBOX))
        # dockerd sets FORWARD's policy to DROP when it finds forwarding off; a new
        # namespace may start with forwarding on, so put dockerd's policy in force here.
        assert inside(throwaway_netns, "iptables", "-P", "FORWARD", "DROP").returncode == 0
        policy = inside(throwaway_netns, "iptables", "-S", "FORWARD").stdout
        assert "-P FORWARD DROP" in policy and "-j DOCKER-USER" in policy
        deadline = time.monotonic() + 20
        while f"-i {sampand.bridge} " not in inside(
                throwaway_netns, "iptables", "-S", "DOCKER-USER").stdout:
            assert time.monotonic() < deadline, firewall_state(throwaway_netns)
            time.sleep(0.2)
        theirs, ours = secrets.SystemRandom().sample(range(20000, 30000), 2)
        dockerd.ok("run", "-d", "-p", f"127.0.0.1:{theirs}:80", "busybox", "sh", "-c",
                   "echo dockerd-page > /tmp/index.html; httpd -f -p 80 -h /tmp")
        web = sampand.ok("run", "-d", "-p", f"127.0.0.1:{ours}:80", "nginx:bookworm").strip()
        theirs_page = fetch_inside(throwaway_netns, f"http://127.0.0.1:{theirs}/")
        assert "dockerd-page" in theirs_page.stdout, (theirs_page.stderr,
                                                      firewall_state(throwaway_netns))
        our_page = fetch_inside(throwaway_netns, f"http://127.0.0.1:{ours}/")
        assert "nginx:bookworm fixture" in our_page.stdout, (our_page.stderr,
                                                             firewall_state(throwaway_netns))
        page = sampand.docker("run", "--rm", "busybox", "sh", "-c",
                              HTTP_GET.format(host=sampand.ip_of(web)), timeout=60)
        assert b"nginx:bookworm fixture" in page.stdout, (page.stderr,
                                                          firewall_state(throwaway_netns))
    finally:
        sampand.close()
        dockerd.close()


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
