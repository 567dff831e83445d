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
import sys
from dataclasses import dataclass, field
from typing import Any, cast

from sampan import errdefs
from sampan.api.server import Backends, serve
from sampan.api.types import OutputStream
from sampan.cmd.network_wiring import network_service
from sampan.daemon.containers import ContainerService
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
from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.driver import KernelCalls
from sampan.drivers.graph.images import ImageStore
from sampan.drivers.graph.images.backends import Layers
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
    firewall_table: str = "sampan"
    runtimes: dict[str, str] = field(default_factory=dict)
    insecure_tcp: bool = False
    tls: dict[str, str] = field(default_factory=dict)


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
    parser.add_argument("--tlsverify", action="store_true")
    parser.add_argument("--tlscacert")
    parser.add_argument("--tlscert")
    parser.add_argument("--tlskey")
    parser.add_argument("-b", "--bridge", help="the default bridge's device name "
                        "(default sampan0; none: containers without --network get lo only)")
    parser.add_argument("--bip", help="the default bridge's address and prefix, e.g. "
                        "172.29.0.1/16 (default: a free private subnet)")
    parser.add_argument("--firewall-table", help="name of the nftables tables sampand owns "
                        "(default sampan)")
    parser.add_argument("--insecure-tcp", action="store_true",
                        help="allow tcp:// without TLS (anyone who reaches it is root)")
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
    options.bridge = args.bridge or options.bridge
    options.bip = args.bip or options.bip
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
    for name, runtime in (config.get("runtimes") or {}).items():
        options.runtimes[name] = runtime["path"] if isinstance(runtime, dict) else str(runtime)


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


def unix_socket_path(host: str) -> str | None:
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host.startswith("/"):
        return host
    return None


async def run(options: Options) -> int:
    paths = DaemonPaths(os.path.abspath(options.data_root), os.path.abspath(options.exec_root))
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
    containers = ContainersBackend(
        paths=paths, store=store, images=image_store, layers=layers, supervisor=supervisor,
        events=events, mounter=RootfsMounter(calls), build_spec=build_container_spec,
        runtimes=runtimes, default_runtime=options.default_runtime, networking=networks)
    networks.bind_containers(containers)
    execs = ExecService(paths=paths, containers=containers, supervisor=supervisor)
    health = HealthMonitor(containers=containers, execs=execs)
    health.attach()
    images = ImageService(store=image_store, containers=containers, events=events)
    system = SystemService(paths=paths, containers=containers, images=images, events=events,
                           runtimes=runtimes, default_runtime=options.default_runtime,
                           driver=layers.driver_name, daemon_id=daemon_id(paths.data_root))
    await networks.load()
    await containers.restore()
    await networks.restore()
    backends = Backends(system=system, containers=containers, exec=execs, images=images,
                        networks=networks)
    sockets = [p for p in (unix_socket_path(h) for h in options.hosts) if p]
    tcp_hosts = [h for h in options.hosts if h.startswith("tcp://")]
    if tcp_hosts:
        raise SystemExit("sampand: tcp:// hosts are not supported yet; use a unix socket")
    if not sockets:
        raise SystemExit("sampand: no host to listen on")
    servers = []
    for socket_path in sockets:
        os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
        servers.append(await serve(socket_path, backends))
    log.info("sampand listening on %s (data root %s)", ", ".join(sockets), paths.data_root)
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
