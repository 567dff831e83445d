#!/usr/bin/env python3
"""HTTP through published ports: sampand vs dockerd vs the same nginx on the host (not a test).

One run measures, with ``wrk`` (Debian's; bounded: ``--duration`` seconds per sample, loopback
and the engines' own bridges only), the ``nginx:bookworm`` fixture image's nginx (Debian's
package, its own configuration, default command) reached:

* ``host direct``       the same nginx binary and configuration run on the host (chroot into
                        the image's unpacked root file system, listening on 127.0.0.1:<port>)
* ``sampand 127.0.0.1`` a sampand container published with ``-p 127.0.0.1:<port>:80``
                        (nftables DNAT, no userland proxy)
* ``sampand container`` the same container at its bridge address, port 80
* ``dockerd 127.0.0.1`` a dockerd container published the same way (docker-proxy)
* ``dockerd container`` that container at its bridge address
* ``host direct (ns)``  the host nginx again, inside dockerd's namespace (the reference for the
                        two dockerd rows)

dockerd runs with iptables on (its chains, FORWARD policy DROP) inside a throw-away network
namespace (``ip netns add``; ``nsenter --net unshare -m``, as
/work/shared/TESTING-WITH-REFERENCE-ENGINES.md says), so nothing of it stays on the host;
wrk runs inside that namespace for its rows. sampand runs in the host namespace with a
default bridge and nft tables of its own (``nb<random>``, ``sampan_nb<random>``).

Then ``run --rm``: for each engine, ``docker run --rm busybox true`` (default bridge) and
``docker run --rm --network none busybox true``, interleaved, ``--runs`` each after warm-up:
the difference of the medians is what network setup adds; and ``-p 127.0.0.1::80`` (a
published port: the firewall changes at start and at exit).

Then the profile of sampand's network setup path, in this process with the driver's own
classes on a bridge and nft table of its own: the cold import of pyroute2, and per container
the namespace file, the veth/address/route plan (netlink round trips), ``nft -f`` of the
ruleset, dockerd's ``DOCKER-USER`` check (``iptables -S``), the veth removal, and the
namespace removal; plus the per-phase times sampand logs for its ``run --rm`` calls.

Usage: ``sudo python3 bench/network_bench.py [--duration 5] [--rounds 3] [--connections 16]
[--runs 15] [--engines sampand,dockerd] [--only http,run,profile]``.
Everything is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "src"))

from sampand_harness import BUSYBOX, SHARED_IMAGES, Sampand, stop_pid  # noqa: E402

NGINX = SHARED_IMAGES / "nginx.tar.gz"
FIXTURE_TEXT = "nginx:bookworm fixture"


# ---------------------------------------------------------------------------- helpers


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


def in_netns(netns: str, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns}", *argv] if netns else argv


FETCH = """
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{sys.argv[1]}: {exc}")
        time.sleep(0.1)
"""


def wait_for_page(url: str, netns: str = "", timeout: float = 60) -> None:
    result = subprocess.run(in_netns(netns, [sys.executable, "-c", FETCH, url, str(timeout)]),
                            capture_output=True, text=True, timeout=timeout + 30, check=False)
    if FIXTURE_TEXT not in result.stdout:
        raise RuntimeError(f"no page at {url}: {result.stderr.strip()}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)] if ordered else 0.0


# ---------------------------------------------------------------------------- nginx on the host


def unpack_image_rootfs(archive: Path, target: Path) -> None:
    """The image's layers, in order, into ``target`` (whiteouts applied)."""
    import json

    target.mkdir(parents=True)
    with tarfile.open(archive) as outer:
        member = outer.extractfile("manifest.json")
        assert member is not None
        layers = json.load(member)[0]["Layers"]
        for layer in layers:
            data = outer.extractfile(layer)
            assert data is not None
            with tarfile.open(fileobj=data, mode="r|") as inner:
                for entry in inner:
                    name = os.path.basename(entry.name)
                    if name.startswith(".wh."):
                        gone = target / os.path.dirname(entry.name) / name[4:]
                        if gone.is_dir() and not gone.is_symlink():
                            shutil.rmtree(gone, ignore_errors=True)
                        else:
                            with contextlib.suppress(FileNotFoundError):
                                gone.unlink()
                        continue
                    inner.extract(entry, target, set_attrs=True, numeric_owner=True,
                                  filter="fully_trusted")


@dataclass
class HostNginx:
    """The image's nginx, chrooted into its root file system, in the host namespace or in
    ``netns``: the image's nginx.conf with its own pid file and one server on
    127.0.0.1:<port> (the image's default site otherwise)."""

    rootfs: Path
    name: str
    netns: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        etc = self.rootfs / "etc" / "nginx"
        conf = (etc / "nginx.conf").read_text()
        conf = conf.replace("pid /run/nginx.pid;", f"pid /run/nginx-{self.name}.pid;")
        conf = conf.replace("error_log /var/log/nginx/error.log;",
                            f"error_log /var/log/nginx/error-{self.name}.log;")
        conf = conf.replace("access_log /var/log/nginx/access.log;",
                            f"access_log /var/log/nginx/access-{self.name}.log;")
        conf = conf.replace("include /etc/nginx/sites-enabled/*;",
                            f"include /etc/nginx/bench-{self.name}.site;")
        (etc / f"bench-{self.name}.conf").write_text(conf)
        site = (etc / "sites-available" / "default").read_text()
        site = site.replace("listen 80 default_server;",
                            f"listen 127.0.0.1:{self.port} default_server;")
        site = "\n".join(line for line in site.splitlines() if "listen [::]:80" not in line)
        (etc / f"bench-{self.name}.site").write_text(site + "\n")
        argv = ["chroot", str(self.rootfs), "nginx", "-c", f"/etc/nginx/bench-{self.name}.conf",
                "-g", "daemon off;"]
        self.process = subprocess.Popen(in_netns(self.netns, argv), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_for_page(self.url, self.netns)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGQUIT)  # graceful: workers exit too
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


# ---------------------------------------------------------------------------- the engines


@dataclass
class Engine:
    name: str
    env: dict[str, str]
    netns: str  # where its 127.0.0.1 is ("" for the host namespace)
    run_times: dict[str, list[float]] = field(default_factory=dict)

    def docker(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: "
                               f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode()

    def timed(self, row: str, *args: str) -> None:
        started = time.perf_counter()
        self.docker(*args)
        self.run_times.setdefault(row, []).append(time.perf_counter() - started)

    def pid(self, ref: str) -> int:
        return int(self.docker("inspect", "-f", "{{.State.Pid}}", ref).strip())

    def address(self, ref: str) -> str:
        import json

        settings = json.loads(self.docker("inspect", ref))[0]["NetworkSettings"]
        return str(settings["IPAddress"])


class BenchSampand(Sampand):
    """sampand (the fast launcher, log level debug for the per-phase lines) with a default
    bridge and nft tables of its own."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"nb{self.tag}"
        self.table = f"sampan_nb{self.tag}"
        super().__init__(extra_args=("--bridge", self.bridge, "--firewall-table", self.table))

    def argv(self) -> list[str]:
        return [str(REPO / "bin" / "sampand"), "-H", f"unix://{self.socket_path}",
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "sampand.pid"), "--log-level", "debug",
                *self.extra_args]

    def close(self) -> None:
        super().close()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        for family in ("ip", "bridge"):
            subprocess.run(["nft", "delete", "table", family, self.table],
                           capture_output=True, check=False)


@contextlib.contextmanager
def sampand_engine() -> Iterator[tuple[Engine, BenchSampand]]:
    daemon = BenchSampand()
    with daemon:
        for image in (BUSYBOX, NGINX):
            daemon.ok("load", "-q", "-i", str(image), timeout=300)
        yield Engine("sampand", daemon.env, ""), daemon


@contextlib.contextmanager
def throwaway_netns() -> Iterator[str]:
    name = f"nb{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def dockerd_engine(netns: str) -> Iterator[Engine]:
    """dockerd with iptables on (and the containerd it starts) in ``netns`` and a private
    mount namespace: its mounts, chains and docker0 go away with them."""
    base = Path(tempfile.mkdtemp(prefix="nbd.", dir="/tmp"))
    (base / "daemon.json").write_text("{}")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": str(base),
           "DOCKER_HOST": f"unix://{base / 'docker.sock'}", "DOCKER_CONFIG": str(base / "cli")}
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["nsenter", f"--net={netns}", "unshare", "-m", "--propagation", "private", "dockerd",
         "--config-file", str(base / "daemon.json"), "--data-root", str(base / "docker"),
         "--exec-root", str(base / "dexec"), "--pidfile", str(base / "dockerd.pid"),
         "-H", env["DOCKER_HOST"], "--cgroup-parent", f"/{base.name}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = Engine("dockerd", env, netns)
    try:
        deadline = time.monotonic() + 90
        while b"API listen on" not in (base / "dockerd.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockerd did not start: "
                                   + (base / "dockerd.log").read_text()[-2000:])
            time.sleep(0.2)
        for image in (BUSYBOX, NGINX):
            engine.docker("load", "-q", "-i", str(image), timeout=300)
        yield engine
    finally:
        with contextlib.suppress(Exception):
            ids = engine.docker("ps", "-aq", timeout=30).split()
            if ids:
                engine.docker("rm", "-f", *ids, timeout=120)
        stop_pid(process.pid, timeout=30)
        log.close()
        remove_cgroup_parent(base.name)
        mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                   .splitlines() if line.split()[4].startswith(str(base))]
        for target in sorted(mounted, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------- HTTP load

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Target:
    name: str
    url: str
    netns: str
    reference: str  # the row its ratio is taken against
    server_pid: int = 0  # nginx's master: its CPU time and its workers' is charged per request
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def wrk(target: Target, args: argparse.Namespace) -> None:
    argv = in_netns(target.netns, ["wrk", "-t", str(args.threads), "-c", str(args.connections),
                                   "-d", f"{args.duration}s", "--latency", target.url])
    cpu_before = server_cpu(target.server_pid)
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=args.duration + 60, check=False)
    cpu_after = server_cpu(target.server_pid)
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    done = re.search(r"(\d+) requests in", result.stdout)
    if done and int(done.group(1)) and target.server_pid:
        target.cpu_us.append((cpu_after - cpu_before) / int(done.group(1)) * 1e6)
    if result.returncode != 0 or found is None:
        target.errors.append(f"wrk failed: {result.stderr.strip() or result.stdout[-300:]}")
        return
    for line in result.stdout.splitlines():
        if "Socket errors" in line or "Non-2xx" in line:
            target.errors.append(line.strip())
    target.rps.append(float(found.group(1)))
    for percent, into in (("50%", target.p50_ms), ("99%", target.p99_ms)):
        latency = re.search(rf"^\s+{percent}\s+([\d.]+)(us|ms|s)\s*$", result.stdout, re.M)
        if latency:
            into.append(float(latency.group(1)) * _UNITS[latency.group(2)])


def server_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its children (nginx's master and workers)."""
    if not pid:
        return 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for one in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def http_rows(targets: list[Target], args: argparse.Namespace) -> None:
    for _ in range(args.rounds):  # interleaved: the machine's load moves between samples
        for target in targets:
            wrk(target, args)
    by_name = {t.name: t for t in targets}
    print(f"\nHTTP: wrk -t {args.threads} -c {args.connections} -d {args.duration}s, "
          f"{args.rounds} samples per row (median; ratio to the host direct row of the same "
          "namespace)")
    print(f"{'target':<22}{'req/s':>10}{'min':>10}{'max':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'ratio':>8}{'nginx us/req':>14}")
    for target in targets:
        reference = by_name.get(target.reference)
        ratio = ""
        if reference is not None and median(reference.rps):
            ratio = f"{median(target.rps) / median(reference.rps):.2f}x"
        print(f"{target.name:<22}{median(target.rps):>10.0f}{min(target.rps, default=0):>10.0f}"
              f"{max(target.rps, default=0):>10.0f}{median(target.p50_ms):>9.2f}"
              f"{median(target.p99_ms):>9.2f}{ratio:>8}{median(target.cpu_us):>14.1f}")
    for target in targets:
        for error in sorted(set(target.errors)):
            print(f"  {target.name}: {error}")


def attribution_targets(engine: Engine, reference: str) -> list[Target]:
    """Rows that split the container's cost from the network path's: the same container
    with ``--network host`` (no bridge, no NAT: what being a container costs nginx, e.g.
    the seccomp filter on every system call), and the published port of a container with
    ``--security-opt seccomp=unconfined``."""
    port = free_port()
    site = "/etc/nginx/sites-available/default"
    hostnet_id = engine.docker("run", "-d", "--network", "host", "nginx:bookworm", "sh", "-c",
                  f"sed -i -e 's/listen 80 default_server;/listen 127.0.0.1:{port} "
                  f"default_server;/' -e '/listen \\[::\\]:80/d' {site} && "
                  "exec nginx -g 'daemon off;'").strip()
    hostnet = f"http://127.0.0.1:{port}/"
    wait_for_page(hostnet, engine.netns)
    published = free_port()
    unconfined_id = engine.docker("run", "-d", "--security-opt", "seccomp=unconfined", "-p",
                                  f"127.0.0.1:{published}:80", "nginx:bookworm").strip()
    unconfined = f"http://127.0.0.1:{published}/"
    wait_for_page(unconfined, engine.netns)
    return [Target(f"{engine.name} host network", hostnet, engine.netns, reference,
                   engine.pid(hostnet_id)),
            Target(f"{engine.name} 127.0.0.1 unconf.", unconfined, engine.netns, reference,
                   engine.pid(unconfined_id))]


# ---------------------------------------------------------------------------- run --rm


def run_rows(engines: list[Engine], runs: int) -> None:
    for engine in engines:
        for _ in range(2):  # warm-up
            engine.docker("run", "--rm", "busybox", "true")
            engine.docker("run", "--rm", "--network", "none", "busybox", "true")
        for _ in range(runs):
            engine.timed("bridge", "run", "--rm", "busybox", "true")
            engine.timed("none", "run", "--rm", "--network", "none", "busybox", "true")
            engine.timed("bridge -p", "run", "--rm", "-p", "127.0.0.1::80", "busybox", "true")
    print(f"\nrun --rm busybox true, {runs} runs each, interleaved (ms: median / p90)")
    print(f"{'engine':<10}{'bridge':>16}{'--network none':>18}{'network adds':>14}"
          f"{'bridge -p':>16}{'-p adds':>10}")
    for engine in engines:
        bridge, none = engine.run_times["bridge"], engine.run_times["none"]
        ports = engine.run_times["bridge -p"]
        print(f"{engine.name:<10}{median(bridge) * 1000:>9.0f} / {p90(bridge) * 1000:<4.0f}"
              f"{median(none) * 1000:>11.0f} / {p90(none) * 1000:<4.0f}"
              f"{(median(bridge) - median(none)) * 1000:>12.0f}"
              f"{median(ports) * 1000:>9.0f} / {p90(ports) * 1000:<4.0f}"
              f"{(median(ports) - median(none)) * 1000:>8.0f}")


_PHASES = re.compile(r"network setup of (\w+) took ([\d.]+) ms \((.*)\)")
_TEARDOWN = re.compile(r"network teardown of (\w+) took ([\d.]+) ms")


def sampand_phases(log_path: Path) -> None:
    """The per-phase lines sampand's network service logs at debug level."""
    text = log_path.read_text(errors="replace")
    setups: dict[str, list[float]] = {}
    totals = [float(m.group(2)) for m in _PHASES.finditer(text)]
    for match in _PHASES.finditer(text):
        for part in match.group(3).split(", "):
            key, _, value = part.partition(" ")
            with contextlib.suppress(ValueError):
                setups.setdefault(key, []).append(float(value))
    teardowns = [float(m.group(2)) for m in _TEARDOWN.finditer(text)]
    if not totals:
        print("\n(sampand logged no network phase lines)")
        return
    print(f"\nsampand's own log, {len(totals)} container starts on the default bridge "
          "(ms, median):")
    print(f"  setup total {median(totals):.1f}: "
          + ", ".join(f"{k} {median(v):.1f}" for k, v in setups.items()))
    if teardowns:
        print(f"  teardown total {median(teardowns):.1f}")


# ---------------------------------------------------------------------------- profile


def profile_rows(runs: int, base: Path) -> None:
    """sampand's network setup path piece by piece, with the driver's classes in this
    process (a bridge, namespaces and nft table of the profile's own)."""
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pyroute2"],
                                capture_output=True, text=True, check=False,
                                env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    cumulative = 0
    for line in importtime.stderr.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() == "pyroute2":
            cumulative = int(fields[1])
    started = time.perf_counter()
    import pyroute2  # type: ignore[import-untyped]  # noqa: F401

    first_import = (time.perf_counter() - started) * 1000

    from sampan.drivers.network.bridge import BridgeDriver
    from sampan.drivers.network.executor import NetlinkExecutor
    from sampan.drivers.network.firewall import DockerUserRules, NftFirewall, render_ruleset
    from sampan.drivers.network.model import Endpoint, Network
    from sampan.drivers.network.netns import NetnsFiles
    from sampan.drivers.network.plan import host_ifname, mac_for, plan_endpoint
    from sampan.drivers.network.subnets import choose_subnet, host_routes

    tag = secrets.token_hex(3)
    table = f"sampan_np{tag}"
    subnet = choose_subnet([f"10.{n}.{m}.0/24" for n in range(200, 250) for m in (7, 77)],
                           host_routes())
    gateway = str(next(subnet.hosts()))
    network = Network(id=secrets.token_hex(32), name="profile", driver="bridge", created=0,
                      subnet=str(subnet), gateway=gateway, bridge=f"np{tag}")
    executor = NetlinkExecutor()
    firewall = NftFirewall()
    docker_user = DockerUserRules(f"sampan-profile-{tag}")
    driver = BridgeDriver(executor, firewall, docker_user, table)
    netns_files = NetnsFiles(str(base / "profile-netns"))
    phases: dict[str, list[float]] = {}

    def timed(name: str, work: Callable[[], object]) -> None:
        began = time.perf_counter()
        work()
        phases.setdefault(name, []).append((time.perf_counter() - began) * 1000)

    try:
        driver.create(network)
        for index in range(runs + 1):
            container = secrets.token_hex(32)
            address = str(list(subnet.hosts())[index % 200 + 1])
            endpoint = Endpoint(network_id=network.id, container_id=container,
                                endpoint_id=container, ifname="eth0",
                                host_ifname=host_ifname(container, network.id), address=address,
                                prefixlen=subnet.prefixlen, gateway=gateway,
                                mac=mac_for(address))
            path = netns_files.path(container)
            timed("netns create", lambda c=container: netns_files.create(c))
            timed(f"veth plan ({len(plan_endpoint(network, endpoint, path))} ops)",
                  lambda e=endpoint, p=path: driver.join(network, e, p))
            ruleset = render_ruleset([network], [], table, {network.bridge: [
                endpoint.host_ifname]})
            timed("nft -f ruleset", lambda r=ruleset: firewall.apply(r))
            timed("iptables DOCKER-USER", lambda: docker_user.sync([network.bridge]))
            timed("veth removal", lambda e=endpoint: driver.leave(e))
            timed("netns removal", lambda c=container: netns_files.remove(c))
            if index == 0:
                phases.clear()  # the first round pays the lazy imports
        one_nft = subprocess.run(["nft", "--version"], capture_output=True, check=False)
        del one_nft
        began = time.perf_counter()
        for _ in range(runs):
            subprocess.run(["nft", "--version"], capture_output=True, check=False)
        nft_start = (time.perf_counter() - began) * 1000 / runs
    finally:
        with contextlib.suppress(Exception):
            driver.remove(network)
        docker_user.sync([])
        for family in ("ip", "bridge"):
            subprocess.run(["nft", "delete", "table", family, table], capture_output=True,
                           check=False)
        for name in netns_files.names():
            netns_files.remove(name)
    print(f"\nsampand's network setup path, profiled piece by piece ({runs} containers, ms)")
    print(f"  import pyroute2 (once per daemon): {cumulative / 1000:.0f} ms cold "
          f"(-X importtime), {first_import:.0f} ms here")
    for name, values in phases.items():
        print(f"  {name:<28}{median(values):>8.2f} median {p90(values):>8.2f} p90")
    print(f"  (of which a bare process start of nft: {nft_start:.2f})")


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk sample")
    parser.add_argument("--rounds", type=int, default=3, help="wrk samples per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=15, help="run --rm calls per row")
    parser.add_argument("--engines", default="sampand,dockerd")
    parser.add_argument("--only", default="http,run,profile")
    parser.add_argument("--no-attribution", dest="attribution", action="store_false",
                        help="leave out the host-network and seccomp=unconfined rows")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    parts = set(args.only.split(","))
    wanted = set(args.engines.split(","))
    base = Path(tempfile.mkdtemp(prefix="nb.", dir="/tmp"))
    failed = False
    try:
        with contextlib.ExitStack() as stack:
            engines: list[Engine] = []
            targets: list[Target] = []
            sampand: BenchSampand | None = None
            if "http" in parts or "run" in parts:
                if "sampand" in wanted:
                    engine, sampand = stack.enter_context(sampand_engine())
                    engines.append(engine)
                if "dockerd" in wanted:
                    netns = stack.enter_context(throwaway_netns())
                    engines.append(stack.enter_context(dockerd_engine(netns)))
            if "http" in parts:
                unpack_image_rootfs(NGINX, base / "rootfs")
                host = HostNginx(base / "rootfs", "host")
                stack.callback(host.stop)
                host.start()
                assert host.process is not None
                targets.append(Target("host direct", host.url, "", "host direct",
                                      host.process.pid))
                for engine in engines:
                    port = free_port()
                    cid = engine.docker("run", "-d", "-p", f"127.0.0.1:{port}:80",
                                        "nginx:bookworm").strip()
                    address = engine.address(cid)
                    published = f"http://127.0.0.1:{port}/"
                    wait_for_page(published, engine.netns)
                    wait_for_page(f"http://{address}/", engine.netns)
                    reference = "host direct"
                    if engine.netns:
                        inside = HostNginx(base / "rootfs", "netns", engine.netns)
                        stack.callback(inside.stop)
                        inside.start()
                        reference = "host direct (ns)"
                        assert inside.process is not None
                        targets.append(Target(reference, inside.url, engine.netns, reference,
                                              inside.process.pid))
                    server = engine.pid(cid)
                    targets.append(Target(f"{engine.name} 127.0.0.1", published, engine.netns,
                                          reference, server))
                    targets.append(Target(f"{engine.name} container", f"http://{address}/",
                                          engine.netns, reference, server))
                    if args.attribution:
                        targets += attribution_targets(engine, reference)
                http_rows(targets, args)
            if "run" in parts:
                run_rows(engines, args.runs)
                if sampand is not None:
                    sampand_phases(sampand.root / "sampand.log")
            if "profile" in parts:
                profile_rows(args.runs, base)
    except (RuntimeError, subprocess.SubprocessError, AssertionError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        failed = True
    finally:
        # the profile's namespace directory is a bind mount of itself (as ``ip netns`` does)
        mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                   .splitlines() if line.split()[4].startswith(str(base) + "/")]
        for target in sorted(mounted, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
