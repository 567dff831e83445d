"""``sampand``: the daemon. Parses dockerd's flags, builds the services and wires them into
the Engine API server (this is the only place that wires implementations together).

SIGTERM or SIGINT stops serving and exits; containers keep running under the supervisor and a
later ``sampand`` finds them again (live restore).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, cast

from sampan import errdefs
from sampan.api.server import Backends, serve
from sampan.api.types import OutputStream
from sampan.cmd.network_wiring import network_service
from sampan.daemon.archive import ArchiveService
from sampan.daemon.containers import ContainerService
from sampan.daemon.create_config import parse_log_size
from sampan.daemon.distribution import DistributionService
from sampan.daemon.events import EventBus
from sampan.daemon.execs import ExecService
from sampan.daemon.health import HealthMonitor
from sampan.daemon.images import ImageService
from sampan.daemon.networks import NetworkConfig
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.rootfs import RootfsMounter
from sampan.daemon.spec import build_container_spec
from sampan.daemon.store import ContainerStore
from sampan.daemon.system import SystemService
from sampan.daemon.volumes import VolumeService
from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.driver import KernelCalls
from sampan.drivers.graph.images import ImageStore
from sampan.drivers.graph.images.backends import Layers
from sampan.drivers.volume.local import LocalDriver
from sampan.supervisor.client import SupervisorClient

log = logging.getLogger("sampand")

DEFAULT_HOST = "unix:///run/sampan.sock"
DEFAULT_CONFIG_FILE = "/etc/sampan/daemon.json"
REPO_BIN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "bin")


@dataclass
class Options:
    hosts: list[str] = field(default_factory=list)
    data_root: str = "/var/lib/sampan"
    exec_root: str = "/run/sampan"
    pidfile: str = ""
    log_level: str = "info"
    default_runtime: str = "sampan-runc"
    bridge: str = "sampan0"
    bip: str = ""
    cgroup_parent: str = "/sampan"
    firewall_table: str = "sampan"
    runtimes: dict[str, str] = field(default_factory=dict)
    insecure_tcp: bool = False
    tls: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)
    registry_certs_dir: str = "/etc/sampan/certs.d"


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="sampand", description=__doc__)
    parser.add_argument("-H", "--host", action="append", default=None,
                        help=f"socket to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--data-root")
    parser.add_argument("--exec-root")
    parser.add_argument("-p", "--pidfile")
    parser.add_argument("--config-file", default=None)
    parser.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error",
                                                      "fatal"])
    parser.add_argument("-D", "--debug", action="store_true")
    parser.add_argument("--default-runtime")
    parser.add_argument("--add-runtime", action="append", default=[],
                        help="NAME=PATH of a runc-compatible runtime")
    parser.add_argument("--log-driver", help="the containers' default log driver "
                        "(json-file or none)")
    parser.add_argument("--log-opt", action="append", default=[],
                        help="KEY=VALUE default log driver option (max-size, max-file)")
    parser.add_argument("--tlsverify", action="store_true")
    parser.add_argument("--tlscacert")
    parser.add_argument("--tlscert")
    parser.add_argument("--tlskey")
    parser.add_argument("-b", "--bridge", help="the default bridge's device name "
                        "(default sampan0; none: containers without --network get lo only)")
    parser.add_argument("--cgroup-parent", help="the cgroup the containers' cgroups go under "
                        "(default /sampan)")
    parser.add_argument("--bip", help="the default bridge's address and prefix, e.g. "
                        "172.29.0.1/16 (default: a free private subnet)")
    parser.add_argument("--firewall-table", help="name of the nftables tables sampand owns "
                        "(default sampan)")
    parser.add_argument("--insecure-tcp", action="store_true",
                        help="allow tcp:// without TLS (anyone who reaches it is root)")
    parser.add_argument("--insecure-registry", action="append", default=[],
                        help="registry (host[:port] or CIDR) reached without TLS checks")
    parser.add_argument("--registry-certs-dir", help="Docker-style certs.d with "
                        "<host:port>/ca.crt per registry (default /etc/sampan/certs.d)")
    args = parser.parse_args(argv)
    options = Options()
    config_path = args.config_file or (DEFAULT_CONFIG_FILE
                                       if os.path.exists(DEFAULT_CONFIG_FILE) else None)
    if config_path:
        try:
            with open(config_path) as handle:
                config = json.load(handle)
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read config file {config_path}: {exc}")
        apply_daemon_json(options, config)
    if args.host:
        options.hosts = args.host
    options.hosts = options.hosts or [DEFAULT_HOST]
    options.data_root = args.data_root or options.data_root
    options.exec_root = args.exec_root or options.exec_root
    options.pidfile = args.pidfile or options.pidfile or os.path.join(
        options.exec_root, "sampand.pid")
    options.log_level = "debug" if args.debug else (args.log_level or options.log_level)
    options.default_runtime = args.default_runtime or options.default_runtime
    for item in args.add_runtime:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--add-runtime wants NAME=PATH, got {item!r}")
        options.runtimes[name] = path
    options.insecure_tcp = args.insecure_tcp
    options.log_driver = args.log_driver or options.log_driver
    for item in args.log_opt:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--log-opt wants KEY=VALUE, got {item!r}")
        options.log_opts[key] = value
    try:
        check_log_defaults(options)
    except ValueError as exc:
        parser.error(str(exc))
    options.insecure_registries += args.insecure_registry
    options.registry_certs_dir = args.registry_certs_dir or options.registry_certs_dir
    options.bridge = args.bridge or options.bridge
    options.bip = args.bip or options.bip
    options.cgroup_parent = args.cgroup_parent or options.cgroup_parent
    options.firewall_table = args.firewall_table or options.firewall_table
    for key in ("tlscacert", "tlscert", "tlskey"):
        if getattr(args, key):
            options.tls[key] = getattr(args, key)
    if args.tlsverify:
        options.tls["verify"] = "1"
    return options


def apply_daemon_json(options: Options, config: dict[str, Any]) -> None:
    """The daemon.json keys that apply to sampand."""
    if "hosts" in config:
        options.hosts = list(config["hosts"])
    options.data_root = config.get("data-root", options.data_root)
    options.exec_root = config.get("exec-root", options.exec_root)
    options.pidfile = config.get("pidfile", options.pidfile)
    options.log_level = config.get("log-level", options.log_level)
    if config.get("debug"):
        options.log_level = "debug"
    options.default_runtime = config.get("default-runtime", options.default_runtime)
    options.bridge = config.get("bridge", options.bridge)
    options.bip = config.get("bip", options.bip)
    options.cgroup_parent = config.get("cgroup-parent", options.cgroup_parent)
    options.log_driver = str(config.get("log-driver") or options.log_driver)
    options.log_opts.update({str(k): str(v) for k, v in (config.get("log-opts") or {}).items()})
    if config.get("tlsverify"):
        options.tls["verify"] = "1"
    for key in ("tlscacert", "tlscert", "tlskey"):
        if config.get(key):
            options.tls[key] = str(config[key])
    options.insecure_registries = [str(r) for r in config.get("insecure-registries") or []]
    for name, runtime in (config.get("runtimes") or {}).items():
        options.runtimes[name] = runtime["path"] if isinstance(runtime, dict) else str(runtime)


def check_log_defaults(options: Options) -> None:
    """The daemon's default log driver and options, checked as a container's would be."""
    if options.log_driver not in ("json-file", "none"):
        raise ValueError(f"unsupported log driver {options.log_driver!r} "
                         "(json-file or none)")
    unknown = set(options.log_opts) - {"max-size", "max-file"}
    if options.log_driver == "json-file" and unknown:
        raise ValueError(f"unknown log opt {sorted(unknown)[0]!r} for the json-file driver")
    try:
        if "max-size" in options.log_opts:
            parse_log_size(options.log_opts["max-size"])
        if "max-file" in options.log_opts and int(options.log_opts["max-file"]) < 1:
            raise ValueError
    except (errdefs.InvalidParameter, ValueError):
        raise ValueError(f"invalid log opts {options.log_opts}") from None


def known_runtimes(extra: dict[str, str]) -> dict[str, str]:
    runtimes: dict[str, str] = {}
    own = os.path.join(REPO_BIN, "sampan-runc")
    runtimes["sampan-runc"] = own if os.access(own, os.X_OK) else (
        shutil.which("sampan-runc") or "sampan-runc")
    for name in ("runc", "crun"):
        found = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                        "/sbin:/bin")
        if found:
            runtimes[name] = found
    runtimes.update(extra)
    return runtimes


def write_pidfile(path: str) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(path) as handle:
            old = int(handle.read().strip() or "0")
        if old and old != os.getpid() and os.path.exists(f"/proc/{old}"):
            raise SystemExit(f"sampand: pid file {path} names a running process ({old})")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        handle.write(str(os.getpid()))
    os.rename(temp, path)


def daemon_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    with contextlib.suppress(FileNotFoundError), open(path) as handle:
        return handle.read().strip()
    value = secrets.token_hex(16)
    with open(path, "w") as handle:
        handle.write(value)
    return value


class ContainersBackend(ContainerService):
    """The containers backend: ``ContainerService`` plus the API's logs stream type."""

    async def container_logs(self, id: str, *, follow: bool, stdout: bool, stderr: bool,
                             since: float, until: float, timestamps: bool,
                             tail: int | None) -> OutputStream:
        tty, entries = await self.read_logs(id, follow=follow, stdout=stdout, stderr=stderr,
                                            since=since, until=until, timestamps=timestamps,
                                            tail=tail)
        return OutputStream(tty=tty, entries=entries)


def tcp_address(host: str, *, tls: bool) -> tuple[str, int]:
    """``tcp://HOST[:PORT]`` as (host, port); dockerd's default ports: 2376 with TLS, 2375
    without. ``[::1]:2376`` brackets an IPv6 address."""
    rest = host[len("tcp://"):].rstrip("/")
    default_port = 2376 if tls else 2375
    if rest.startswith("["):
        address, _, port_text = rest[1:].partition("]")
        port_text = port_text.lstrip(":")
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
    else:
        address, port_text = rest, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise SystemExit(f"sampand: invalid port in host {host!r}") from None
    if not 0 <= port < 65536:
        raise SystemExit(f"sampand: invalid port in host {host!r}")
    return address or "127.0.0.1", port


def tcp_ssl_context(options: Options) -> ssl.SSLContext | None:
    """Mutual TLS for tcp:// hosts (``--tlsverify`` with the CA that signs the clients'
    certificates and the server's own certificate and key): a client without a certificate
    signed by that CA is refused in the handshake. Without ``--tlsverify``, only
    ``--insecure-tcp`` allows tcp://, loudly: whoever reaches the port is root on this host."""
    if options.tls.get("verify"):
        missing = [f"--{key}" for key in ("tlscacert", "tlscert", "tlskey")
                   if not options.tls.get(key)]
        if missing:
            raise SystemExit(f"sampand: --tlsverify needs {', '.join(missing)}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(options.tls["tlscert"], options.tls["tlskey"])
            context.load_verify_locations(cafile=options.tls["tlscacert"])
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"sampand: cannot load the TLS files: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
        return context
    if not options.insecure_tcp:
        raise SystemExit("sampand: tcp:// hosts need --tlsverify --tlscacert --tlscert "
                         "--tlskey (or --insecure-tcp to listen without TLS)")
    warning = ("sampand: LISTENING ON TCP WITHOUT TLS (--insecure-tcp): anyone who can reach "
               "the port can run containers as root on this host")
    log.warning(warning)
    print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    return None


def unix_socket_path(host: str) -> str | None:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host.startswith("/"):
        return host
    return None


async def run(options: Options) -> int:
    # Hosts first: a bad TLS setup or host ends sampand before it touches anything.
    sockets = [p for p in (unix_socket_path(h) for h in options.hosts) if p]
    tcp_addresses = [tcp_address(h, tls=bool(options.tls.get("verify")))
                     for h in options.hosts if h.startswith("tcp://")]
    ssl_context = tcp_ssl_context(options) if tcp_addresses else None
    unknown = [h for h in options.hosts if not unix_socket_path(h) and not h.startswith("tcp://")]
    if unknown:
        raise SystemExit(f"sampand: unsupported host {unknown[0]!r} (unix:// or tcp://)")
    if not sockets and not tcp_addresses:
        raise SystemExit("sampand: no host to listen on")
    paths = DaemonPaths(os.path.abspath(options.data_root), os.path.abspath(options.exec_root),
                        cgroup_parent="/" + options.cgroup_parent.strip("/"))
    for directory in (paths.data_root, os.path.join(paths.data_root, "containers"),
                      paths.exec_root, os.path.join(paths.exec_root, "bundles")):
        os.makedirs(directory, mode=0o711, exist_ok=True)
    write_pidfile(options.pidfile)
    runtimes = known_runtimes(options.runtimes)
    if options.default_runtime not in runtimes:
        raise SystemExit(f"sampand: unknown default runtime {options.default_runtime!r}")
    calls = KernelCalls()
    image_root = paths.image_root
    os.makedirs(image_root, mode=0o700, exist_ok=True)
    content = ContentStore(os.path.join(image_root, "content"))
    layers = LayerStore(os.path.join(image_root, "layers"), calls=calls)
    # LayerStore.release returns list[Layer]; Layers wants list[LayerInfo] (list is
    # invariant, though Layer satisfies LayerInfo): the cast states what holds.
    image_store = ImageStore(image_root, cast("Layers", layers), content)
    store = ContainerStore(paths.state_db)
    events = EventBus()
    supervisor = await SupervisorClient.connect(paths.exec_root)
    networks = network_service(paths.data_root, paths.exec_root, NetworkConfig(
        bridge=options.bridge, bip=options.bip, table=options.firewall_table))
    volumes = VolumeService(LocalDriver(os.path.join(paths.data_root, "volumes"), calls),
                            events)
    mounter = RootfsMounter(calls)
    containers = ContainersBackend(
        paths=paths, store=store, images=image_store, layers=layers, supervisor=supervisor,
        events=events, mounter=mounter, build_spec=build_container_spec,
        runtimes=runtimes, default_runtime=options.default_runtime, networking=networks,
        volumes=volumes, default_log={"Type": options.log_driver,
                                      "Config": dict(options.log_opts)})
    networks.bind_containers(containers)
    volumes.bind_containers(containers)
    archive = ArchiveService(paths=paths, containers=containers, layers=layers,
                             mounter=mounter, volumes=volumes, calls=calls)
    execs = ExecService(paths=paths, containers=containers, supervisor=supervisor)
    health = HealthMonitor(containers=containers, execs=execs)
    health.attach()
    distribution = DistributionService(
        images=image_store, layers=layers, events=events,
        root=os.path.join(image_root, "distribution"),
        insecure_registries=options.insecure_registries,
        certs_dir=options.registry_certs_dir)
    images = ImageService(store=image_store, containers=containers, events=events,
                          distribution=distribution)
    system = SystemService(paths=paths, containers=containers, images=images, events=events,
                           runtimes=runtimes, default_runtime=options.default_runtime,
                           driver=layers.driver_name, daemon_id=daemon_id(paths.data_root))
    system.volumes = volumes
    await volumes.load()
    await networks.load()
    await containers.restore()
    await networks.restore()
    backends = Backends(system=system, containers=containers, exec=execs, images=images,
                        networks=networks, volumes=volumes, archive=archive)
    servers = []
    for socket_path in sockets:
        os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
        servers.append(await serve(socket_path, backends))
    listening = list(sockets)
    for address in tcp_addresses:
        server = await serve(None, backends, tcp=address, ssl_context=ssl_context)
        servers.append(server)
        listening += [f"tcp://{host}:{port}" for host, port in server.tcp_addresses]
    log.info("sampand listening on %s (data root %s)", ", ".join(listening), paths.data_root)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    exit_events = loop.create_task(containers.run_exit_events())
    restarts = loop.create_task(containers.start_restart_policy_containers())
    try:
        await stop.wait()
    finally:
        log.info("sampand stopping; containers keep running")
        for server in servers:
            await server.close()
        for task in (exit_events, restarts):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, errdefs.SampanError):
                await task
        health.stop_all()
        await containers.finish_background()
        await networks.close()
        await supervisor.close()
        await distribution.close()
        store.close()
        image_store.close()
        layers.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(options.pidfile)
    return 0



def main(argv: list[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    level = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "error": logging.ERROR, "fatal": logging.CRITICAL}[options.log_level]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run(options)))


if __name__ == "__main__":
    main()
