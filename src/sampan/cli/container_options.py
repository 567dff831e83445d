"""The flags of ``run`` and ``create`` and the ``POST /containers/create`` body they make.

``add_options(parser)`` declares the flags (docker's names and meanings);
``create_body(args, command)`` turns the parsed flags into Docker's ``Config`` with
``HostConfig`` and ``NetworkingConfig`` inside, as the docker CLI sends it.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from sampan.cli.errors import UsageError
from sampan.cli.units import parse_bytes

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``) in nanoseconds."""
    if text in ("0", ""):
        return 0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise UsageError(f'invalid argument "{text}": time: invalid duration "{text}"')
    return int(total)


def _list(parser: argparse.ArgumentParser, *names: str, help: str) -> None:
    parser.add_argument(*names, action="append", default=[], help=help)


def add_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    _list(parser, "-a", "--attach", help="Attach to STDIN, STDOUT or STDERR")
    add("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    add("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    add("--name", default="", help="Assign a name to the container")
    _list(parser, "-e", "--env", help="Set environment variables")
    _list(parser, "--env-file", help="Read in a file of environment variables")
    _list(parser, "-l", "--label", help="Set meta data on a container")
    _list(parser, "-p", "--publish", help="Publish a container's port(s) to the host")
    add("-P", "--publish-all", action="store_true",
        help="Publish all exposed ports to random ports")
    _list(parser, "--expose", help="Expose a port or a range of ports")
    _list(parser, "-v", "--volume", help="Bind mount a volume")
    _list(parser, "--mount", help="Attach a filesystem mount to the container")
    _list(parser, "--tmpfs", help="Mount a tmpfs directory")
    _list(parser, "--volumes-from", help="Mount volumes from the specified container(s)")
    add("-w", "--workdir", default="", help="Working directory inside the container")
    add("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    add("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    add("-h", "--hostname", default="", help="Container host name")
    add("--domainname", default="", help="Container NIS domain name")
    add("--network", "--net", dest="network", default="", help="Connect a container to a network")
    _list(parser, "--network-alias", help="Add network-scoped alias for the container")
    add("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    add("--mac-address", default="", help="Container MAC address")
    add("--rm", action="store_true", help="Automatically remove the container when it exits")
    add("--restart", default="no", help="Restart policy to apply when a container exits")
    add("-m", "--memory", default="", help="Memory limit")
    add("--memory-swap", default="", help="Swap limit equal to memory plus swap")
    add("--memory-reservation", default="", help="Memory soft limit")
    add("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    add("--oom-score-adj", type=int, default=0, help="Tune host's OOM preferences")
    add("--cpus", default="", help="Number of CPUs")
    add("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    add("--cpu-quota", type=int, default=0, help="Limit CPU CFS quota")
    add("--cpu-period", type=int, default=0, help="Limit CPU CFS period")
    add("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    add("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    add("--blkio-weight", type=int, default=0, help="Block IO (relative weight)")
    add("--pids-limit", type=int, default=None, help="Tune container pids limit")
    add("--shm-size", default="", help="Size of /dev/shm")
    add("--privileged", action="store_true", help="Give extended privileges to this container")
    _list(parser, "--cap-add", help="Add Linux capabilities")
    _list(parser, "--cap-drop", help="Drop Linux capabilities")
    _list(parser, "--security-opt", help="Security Options")
    _list(parser, "--device", help="Add a host device to the container")
    _list(parser, "--group-add", help="Add additional groups to join")
    add("--read-only", action="store_true", help="Mount the root filesystem as read only")
    _list(parser, "--sysctl", help="Sysctl options")
    _list(parser, "--ulimit", help="Ulimit options")
    add("--init", action="store_true", help="Run an init inside the container")
    add("--stop-signal", default="", help="Signal to stop the container")
    add("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container")
    add("--health-cmd", default="", help="Command to run to check health")
    add("--health-interval", default="", help="Time between running the check")
    add("--health-timeout", default="", help="Maximum time to allow one check to run")
    add("--health-retries", type=int, default=0, help="Failures needed to report unhealthy")
    add("--health-start-period", default="", help="Start period for the container to initialize")
    add("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    _list(parser, "--dns", help="Set custom DNS servers")
    _list(parser, "--dns-search", help="Set custom DNS search domains")
    _list(parser, "--dns-option", "--dns-opt", help="Set DNS options")
    _list(parser, "--add-host", help="Add a custom host-to-IP mapping (host:ip)")
    add("--ipc", default="", help="IPC mode to use")
    add("--pid", default="", help="PID namespace to use")
    add("--uts", default="", help="UTS namespace to use")
    add("--cgroupns", default="", help="Cgroup namespace to use (host|private)")
    add("--userns", default="", help="User namespace to use")
    add("--runtime", default="", help="Runtime to use for this container")
    add("--log-driver", default="", help="Logging driver for the container")
    _list(parser, "--log-opt", help="Log driver options")
    add("--platform", default="", help="Set platform if server is multi-platform capable")
    add("--pull", default="missing", choices=["always", "missing", "never"],
        help='Pull image before running ("always", "missing", "never")')
    add("--cidfile", default="", help="Write the container ID to the file")
    add("-q", "--quiet", action="store_true", help="Suppress the pull output")


def _read_env_file(path: str) -> list[str]:
    import os

    entries = []
    try:
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if "=" not in line:
                    value = os.environ.get(line)
                    if value is not None:
                        entries.append(f"{line}={value}")
                    continue
                entries.append(line)
    except OSError as error:
        raise UsageError(f"open {path}: {error.strerror.lower() if error.strerror else error}") \
            from error
    return entries


def _expand_env(items: list[str]) -> list[str]:
    import os

    out = []
    for item in items:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def _port_key(text: str) -> tuple[list[str], str]:
    port, _, proto = text.partition("/")
    proto = proto or "tcp"
    if "-" in port:
        first, last = port.split("-", 1)
        return [str(p) for p in range(int(first), int(last) + 1)], proto
    if not port.isdigit():
        raise UsageError(f"invalid containerPort: {port}")
    return [port], proto


def parse_publish(specs: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` -> (ExposedPorts, PortBindings)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        container_part = spec
        host_ip = host_port = ""
        if spec.startswith("["):
            end = spec.index("]")
            host_ip = spec[1:end]
            rest = spec[end + 2 :]
            host_port, _, container_part = rest.rpartition(":")
        else:
            parts = spec.split(":")
            if len(parts) == 3:
                host_ip, host_port, container_part = parts
            elif len(parts) == 2:
                host_port, container_part = parts
            elif len(parts) != 1:
                raise UsageError(f"invalid publish spec: {spec}")
        ports, proto = _port_key(container_part)
        host_ports: list[str] = [""] * len(ports)
        if host_port:
            if "-" in host_port and len(ports) > 1:
                first, last = (int(x) for x in host_port.split("-", 1))
                host_ports = [str(p) for p in range(first, last + 1)]
            else:
                host_ports = [host_port] * len(ports)
        for port, published in zip(ports, host_ports, strict=False):
            key = f"{port}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": published})
    return exposed, bindings


def _restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise UsageError(f"invalid restart policy '{name}'")
    policy: dict[str, Any] = {"Name": name if name != "no" else "no"}
    if count:
        if name != "on-failure":
            raise UsageError(f"invalid restart policy format: maximum retry count cannot be "
                             f"used with restart policy '{name}'")
        policy["MaximumRetryCount"] = int(count)
    return policy


def _ulimits(items: list[str]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        name, _, limits = item.partition("=")
        soft, _, hard = limits.partition(":")
        out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
    return out


def _devices(items: list[str]) -> list[dict[str, str]]:
    out = []
    for item in items:
        parts = item.split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and not set(parts[1]) <= set("rwm") else host
        perms = parts[-1] if len(parts) > 1 and set(parts[-1]) <= set("rwm") else "rwm"
        out.append({"PathOnHost": host, "PathInContainer": inside,
                    "CgroupPermissions": perms})
    return out


def _mounts(items: list[str]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        mount: dict[str, Any] = {"Type": "volume"}
        for field in item.split(","):
            key, _, value = field.partition("=")
            key = key.strip().lower()
            if key == "type":
                mount["Type"] = value
            elif key in ("source", "src"):
                mount["Source"] = value
            elif key in ("target", "destination", "dst"):
                mount["Target"] = value
            elif key in ("readonly", "ro"):
                mount["ReadOnly"] = value in ("", "1", "true")
            elif key == "tmpfs-size":
                mount.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_bytes(value)
        out.append(mount)
    return out


def create_body(args: argparse.Namespace, image: str, command: list[str]) -> dict[str, Any]:
    """Config + HostConfig + NetworkingConfig for ``POST /containers/create``."""
    detach = bool(getattr(args, "detach", False))
    attach = [a.lower() for a in args.attach]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise UsageError(f"invalid argument \"{stream}\" for \"-a, --attach\" flag: "
                             "valid streams are STDIN, STDOUT and STDERR")
    if detach and attach:
        raise UsageError("Conflicting options: -a and -d")
    if not detach and not attach:
        attach = ["stdout", "stderr"] + (["stdin"] if args.interactive else [])
    env = [e for path in args.env_file for e in _read_env_file(path)] + _expand_env(args.env)
    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        labels[key] = value
    exposed, bindings = parse_publish(args.publish)
    for item in args.expose:
        ports, proto = _port_key(item)
        for port in ports:
            exposed[f"{port}/{proto}"] = {}
    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for spec in args.volume:
        parts = spec.split(":")
        if len(parts) == 1:
            volumes[spec] = {}
        else:
            binds.append(spec)
    tmpfs = {}
    for item in args.tmpfs:
        path, _, options = item.partition(":")
        tmpfs[path] = options
    resources: dict[str, Any] = {}
    if args.memory:
        resources["Memory"] = parse_bytes(args.memory)
    if args.memory_swap:
        resources["MemorySwap"] = -1 if args.memory_swap == "-1" else parse_bytes(args.memory_swap)
    if args.memory_reservation:
        resources["MemoryReservation"] = parse_bytes(args.memory_reservation)
    if args.cpus:
        try:
            resources["NanoCpus"] = round(float(args.cpus) * 1e9)
        except ValueError as error:
            raise UsageError(f'invalid argument "{args.cpus}" for "--cpus" flag') from error
    for option, key in (("cpu_shares", "CpuShares"), ("cpu_quota", "CpuQuota"),
                        ("cpu_period", "CpuPeriod"), ("blkio_weight", "BlkioWeight")):
        if getattr(args, option):
            resources[key] = getattr(args, option)
    if args.cpuset_cpus:
        resources["CpusetCpus"] = args.cpuset_cpus
    if args.cpuset_mems:
        resources["CpusetMems"] = args.cpuset_mems
    if args.pids_limit is not None:
        resources["PidsLimit"] = args.pids_limit
    if args.oom_kill_disable:
        resources["OomKillDisable"] = True
    if args.device:
        resources["Devices"] = _devices(args.device)
    if args.ulimit:
        resources["Ulimits"] = _ulimits(args.ulimit)
    network = args.network or "default"
    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": _restart_policy(args.restart),
        "AutoRemove": args.rm,
        "VolumesFrom": args.volumes_from or None,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "Dns": args.dns,
        "DnsOptions": args.dns_option,
        "DnsSearch": args.dns_search,
        "ExtraHosts": args.add_host or None,
        "GroupAdd": args.group_add or None,
        "IpcMode": args.ipc,
        "PidMode": args.pid,
        "UTSMode": args.uts,
        "CgroupnsMode": args.cgroupns,
        "UsernsMode": args.userns,
        "OomScoreAdj": args.oom_score_adj,
        "Privileged": args.privileged,
        "PublishAllPorts": args.publish_all,
        "ReadonlyRootfs": args.read_only,
        "SecurityOpt": args.security_opt or None,
        "Tmpfs": tmpfs or None,
        "Sysctls": dict(item.split("=", 1) for item in args.sysctl) or None,
        "Init": True if args.init else None,
        "Mounts": _mounts(args.mount) or None,
        "LogConfig": {"Type": args.log_driver,
                      "Config": dict(item.split("=", 1) for item in args.log_opt)},
        **resources,
    }
    if args.shm_size:
        host_config["ShmSize"] = parse_bytes(args.shm_size)
    if args.runtime:
        host_config["Runtime"] = args.runtime
    body: dict[str, Any] = {
        "Hostname": args.hostname,
        "Domainname": args.domainname,
        "User": args.user,
        "AttachStdin": "stdin" in attach,
        "AttachStdout": "stdout" in attach,
        "AttachStderr": "stderr" in attach,
        "ExposedPorts": exposed or None,
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": args.interactive and "stdin" in attach,
        "Env": env,
        "Cmd": command or None,
        "Image": image,
        "Volumes": volumes or None,
        "WorkingDir": args.workdir,
        "Entrypoint": None if args.entrypoint is None else (
            [args.entrypoint] if args.entrypoint else [""]),
        "Labels": labels,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {}},
    }
    if args.mac_address:
        body["MacAddress"] = args.mac_address
    if args.stop_signal:
        body["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        body["StopTimeout"] = args.stop_timeout
    if args.no_healthcheck:
        body["Healthcheck"] = {"Test": ["NONE"]}
    elif args.health_cmd or args.health_interval or args.health_retries:
        check: dict[str, Any] = {}
        if args.health_cmd:
            check["Test"] = ["CMD-SHELL", args.health_cmd]
        if args.health_interval:
            check["Interval"] = parse_duration(args.health_interval)
        if args.health_timeout:
            check["Timeout"] = parse_duration(args.health_timeout)
        if args.health_start_period:
            check["StartPeriod"] = parse_duration(args.health_start_period)
        if args.health_retries:
            check["Retries"] = args.health_retries
        body["Healthcheck"] = check
    if args.network_alias or args.ip:
        if network in ("default", "bridge", "host", "none"):
            raise UsageError("network-scoped aliases are only supported for user-defined "
                             "networks")
        endpoint: dict[str, Any] = {"Aliases": args.network_alias or None}
        if args.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
        body["NetworkingConfig"]["EndpointsConfig"][network] = endpoint
    return body
