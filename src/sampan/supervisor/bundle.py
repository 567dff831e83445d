"""The exec driver: Docker's container Config + HostConfig -> an OCI runtime config.json.

A pure function of its input (:class:`ContainerSpecInput`): everything read from the host or
the image (the image's /etc/passwd and /etc/group, the host's capabilities and devices, the
resolved seccomp profile) is passed in by the caller, so the result is reproducible and
testable without root. The defaults are data in :mod:`sampan.supervisor.defaults`.

Docker's behaviours reproduced here: the environment starts with PATH, HOSTNAME (and TERM for
a tty) and the container's own variables replace or extend them; ``User`` is ``name|uid``
with an optional ``:group|gid`` resolved in the image's files, supplementary groups are the
groups listing the user plus its primary group plus ``GroupAdd``; ``--privileged`` means
every capability the host has, every host device, no seccomp and no masked paths.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sampan import errdefs
from sampan.supervisor import defaults


@dataclass(frozen=True)
class ContainerSpecInput:
    id: str
    rootfs: str  # absolute path of the mounted root filesystem
    config: Mapping[str, Any]  # Docker's container Config, merged with the image's config
    host_config: Mapping[str, Any] = field(default_factory=dict)
    # directory holding hosts, hostname and resolv.conf (bound over /etc/...); None: no binds
    container_dir: str | None = None
    # the resolved OCI linux.seccomp profile (Docker's default for these capabilities, or a
    # user profile); None: unconfined. Ignored when privileged or seccomp=unconfined.
    seccomp: Mapping[str, Any] | None = None
    passwd: str | None = None  # the image's /etc/passwd, if any
    group: str | None = None  # the image's /etc/group, if any
    host_capabilities: Sequence[str] = defaults.ALL_CAPABILITIES  # for --privileged
    # devices of the host: {"path", "type", "major", "minor", "fileMode", "uid", "gid"}
    host_devices: Sequence[Mapping[str, Any]] = ()
    # namespace paths to join for "container:<id>" modes: {"network"|"ipc"|"pid"|"uts": path}
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = defaults.CGROUP_PARENT
    hooks: Mapping[str, Any] | None = None
    # OCI mounts the daemon resolved from the container's mount points (volumes, binds,
    # --mount tmpfs); added to the user mounts parsed from host_config here
    extra_mounts: Sequence[Mapping[str, Any]] = ()


def build_spec(container: ContainerSpecInput) -> dict[str, Any]:
    """The OCI config.json for ``container``. Raises ``InvalidParameter`` for bad input and
    ``NotImplementedFeature`` for options Sampan does not support."""
    config = container.config
    host = container.host_config
    privileged = bool(host.get("Privileged"))
    security = _security_options(host.get("SecurityOpt") or [])
    if host.get("Init"):
        raise errdefs.NotImplementedFeature("--init is not supported")
    userns = host.get("UsernsMode") or ""
    if userns not in ("", "host"):
        raise errdefs.NotImplementedFeature(f"userns mode {userns!r} is not supported")

    tty = bool(config.get("Tty"))
    hostname = str(config.get("Hostname") or container.id[:12])
    capabilities = (_known(container.host_capabilities) if privileged
                    else tweak_capabilities(host.get("CapAdd") or [], host.get("CapDrop") or []))
    process: dict[str, Any] = {
        "terminal": tty,
        "user": resolve_user(str(config.get("User") or ""), container.passwd, container.group,
                             host.get("GroupAdd") or []),
        "args": _args(config),
        "env": container_env(hostname, tty, config.get("Env") or []),
        "cwd": str(config.get("WorkingDir") or "/"),
        "capabilities": {key: list(capabilities)
                         for key in ("bounding", "effective", "permitted")},
        "oomScoreAdj": _int(host, "OomScoreAdj"),
    }
    console = host.get("ConsoleSize")
    if tty and isinstance(console, Sequence) and len(console) == 2 and all(console):
        process["consoleSize"] = {"height": int(console[0]), "width": int(console[1])}
    rlimits = _rlimits(host.get("Ulimits") or [])
    if rlimits:
        process["rlimits"] = rlimits
    if security.get("no-new-privileges"):
        process["noNewPrivileges"] = True

    modes = {kind: str(host.get(key) or "") for kind, key in
             (("network", "NetworkMode"), ("ipc", "IpcMode"), ("pid", "PidMode"),
              ("uts", "UTSMode"))}
    namespaces = _namespaces(modes, container.namespace_paths)
    own_uts = any(ns["type"] == "uts" and "path" not in ns for ns in namespaces)
    own_net = any(ns["type"] == "network" for ns in namespaces)

    linux: dict[str, Any] = {
        "resources": _resources(host, privileged),
        "cgroupsPath": f"{container.cgroup_parent.rstrip('/')}/{container.id}",
        "namespaces": namespaces,
    }
    if not privileged:
        linux["maskedPaths"] = list(defaults.MASKED_PATHS)
        linux["readonlyPaths"] = list(defaults.READONLY_PATHS)
    sysctls = dict(defaults.NETWORK_SYSCTLS) if own_net else {}
    sysctls.update({str(k): str(v) for k, v in (host.get("Sysctls") or {}).items()})
    if sysctls:
        linux["sysctl"] = sysctls
    if container.seccomp is not None and not privileged and security.get("seccomp") != \
            "unconfined":
        linux["seccomp"] = copy.deepcopy(dict(container.seccomp))
    devices = _devices(host, privileged, container.host_devices)
    if devices:
        linux["devices"] = [device for device, _ in devices]
        if not privileged:  # privileged containers' cgroup already allows every device
            linux["resources"]["devices"] += [
                {"allow": True, "type": device["type"], "major": device["major"],
                 "minor": device["minor"], "access": access} for device, access in devices]
    spec: dict[str, Any] = {
        "ociVersion": defaults.OCI_VERSION,
        "process": process,
        "root": {"path": container.rootfs, "readonly": bool(host.get("ReadonlyRootfs"))},
        "mounts": _mounts(container, privileged, modes),
        "linux": linux,
    }
    if own_uts:
        spec["hostname"] = hostname
        if config.get("Domainname"):
            spec["domainname"] = str(config["Domainname"])
    if container.hooks:
        spec["hooks"] = copy.deepcopy(dict(container.hooks))
    return spec


# ---------------------------------------------------------------------- process
def _args(config: Mapping[str, Any]) -> list[str]:
    entrypoint = config.get("Entrypoint") or []
    cmd = config.get("Cmd") or []
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    if isinstance(cmd, str):
        cmd = [cmd]
    args = [str(a) for a in [*entrypoint, *cmd]]
    if not args:
        raise errdefs.InvalidParameter("no command specified")
    return args


def container_env(hostname: str, tty: bool, env: Sequence[str]) -> list[str]:
    """PATH, HOSTNAME (TERM) first; the container's variables replace or are appended."""
    result = [defaults.DEFAULT_PATH_ENV, f"HOSTNAME={hostname}"]
    if tty:
        result.append("TERM=xterm")
    index = {entry.partition("=")[0]: i for i, entry in enumerate(result)}
    for entry in env:
        key = str(entry).partition("=")[0]
        if key in index:
            result[index[key]] = str(entry)
        else:
            index[key] = len(result)
            result.append(str(entry))
    return result


def _parse_db(text: str | None) -> list[list[str]]:
    if not text:
        return []
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def resolve_user(user: str, passwd: str | None, group: str | None,
                 group_add: Sequence[str | int] = ()) -> dict[str, Any]:
    """Docker's ``User`` (``name|uid[:group|gid]``) -> OCI ``process.user``."""
    user_part, _, group_part = user.partition(":")
    users = _parse_db(passwd)
    groups = _parse_db(group)
    name = None
    uid, gid = 0, 0
    if user_part:
        entry = next((u for u in users if len(u) >= 4 and
                      (u[0] == user_part or (user_part.isdigit() and u[2] == user_part))), None)
        if entry is not None:
            name, uid, gid = entry[0], int(entry[2]), int(entry[3])
        elif user_part.isdigit():
            uid = int(user_part)
        else:
            raise errdefs.InvalidParameter(
                f"unable to find user {user_part}: no matching entries in passwd file")
    else:
        entry = next((u for u in users if len(u) >= 4 and u[2] == "0"), None)
        name = entry[0] if entry else "root"
    if group_part:
        gid = _group_id(group_part, groups)
    additional: list[int] = []
    if groups:
        for g in groups:
            if len(g) < 3 or not g[2].isdigit():
                continue
            members = g[3].split(",") if len(g) > 3 and g[3] else []
            listed = int(g[2]) == gid or (name is not None and name in members)
            if listed and int(g[2]) not in additional:
                additional.append(int(g[2]))
    else:
        additional.append(gid)
    for extra in group_add:
        number = _group_id(str(extra), groups)
        if number not in additional:
            additional.append(number)
    return {"uid": uid, "gid": gid, "additionalGids": additional}


def _group_id(name: str, groups: list[list[str]]) -> int:
    entry = next((g for g in groups if len(g) >= 3 and (g[0] == name or g[2] == name)), None)
    if entry is not None:
        return int(entry[2])
    if name.isdigit():
        return int(name)
    raise errdefs.InvalidParameter(
        f"unable to find group {name}: no matching entries in group file")


def _cap_name(name: str) -> str:
    upper = str(name).upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def _known(capabilities: Sequence[str]) -> list[str]:
    return [c for c in defaults.ALL_CAPABILITIES if c in set(capabilities)]


def tweak_capabilities(add: Sequence[str], drop: Sequence[str]) -> list[str]:
    """Docker's default capabilities with ``CapAdd``/``CapDrop`` (``ALL`` allowed)."""
    add_names = [_cap_name(c) for c in add]
    drop_names = [_cap_name(c) for c in drop]
    for name in add_names + drop_names:
        if name != "CAP_ALL" and name not in defaults.ALL_CAPABILITIES:
            raise errdefs.InvalidParameter(f'unknown capability: "{name}"')
    if "CAP_ALL" in add_names:
        base = list(defaults.ALL_CAPABILITIES)
    elif "CAP_ALL" in drop_names:
        base = []
    else:
        base = list(defaults.DEFAULT_CAPABILITIES)
    result = [c for c in base if c not in drop_names or "CAP_ALL" in add_names]
    for name in add_names:
        if name != "CAP_ALL" and name not in result:
            result.append(name)
    return result


def _rlimits(ulimits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for ulimit in ulimits:
        name = str(ulimit.get("Name", "")).lower()
        if name not in defaults.RLIMITS:
            raise errdefs.InvalidParameter(f"invalid ulimit type: {name}")
        soft, hard = int(ulimit.get("Soft", 0)), int(ulimit.get("Hard", 0))
        if soft > hard and hard >= 0:
            raise errdefs.InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        result.append({"type": defaults.RLIMITS[name], "hard": hard, "soft": soft})
    return result


def _security_options(options: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for option in options:
        key, sep, value = str(option).replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            result[key] = (value or "true").lower() in ("true", "1", "yes")
        elif key in ("seccomp", "apparmor", "label", "systempaths", "mask"):
            result[key] = value if sep else ""
        else:
            raise errdefs.InvalidParameter(f"invalid --security-opt: {option!r}")
    return result


# ---------------------------------------------------------------------- linux
def _namespaces(modes: Mapping[str, str],
                paths: Mapping[str, str]) -> list[dict[str, str]]:
    result: list[dict[str, str]] = []
    for kind in defaults.NAMESPACE_ORDER:
        mode = modes.get(kind, "")
        if kind == "mount":
            result.append({"type": "mount"})
        elif mode == "host":
            continue
        elif mode.startswith("container:") or (kind == "network" and (
                mode.startswith("ns:") or kind in paths)):
            if kind not in paths:
                raise errdefs.InvalidParameter(f"{kind} mode {mode!r}: no namespace path given")
            result.append({"type": kind, "path": paths[kind]})
        elif mode in ("", "private", "shareable", "none", "default", "bridge") or \
                kind == "network":
            result.append({"type": kind})
        else:
            raise errdefs.InvalidParameter(f"invalid {kind} mode: {mode}")
    return result


def _int(values: Mapping[str, Any], key: str) -> int:
    value = values.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise errdefs.InvalidParameter(f"{key} must be an integer, not {value!r}")
    return value


def _resources(host: Mapping[str, Any], privileged: bool) -> dict[str, Any]:
    memory_limit = _int(host, "Memory")
    swap = _int(host, "MemorySwap")
    reservation = _int(host, "MemoryReservation")
    for key, value in (("Memory", memory_limit), ("MemoryReservation", reservation)):
        if value < 0:
            raise errdefs.InvalidParameter(f"invalid {key}: {value} (must not be negative)")
    if memory_limit and swap == 0:
        swap = 2 * memory_limit  # Docker: unset swap is as much again as the memory limit
    if memory_limit and swap > 0 and swap < memory_limit:
        raise errdefs.InvalidParameter(
            "minimum memoryswap limit should be larger than memory limit, see usage")
    memory: dict[str, Any] = {}
    if memory_limit:
        memory["limit"] = memory_limit
    if reservation:
        memory["reservation"] = reservation
    if swap and (memory_limit or swap == -1):
        memory["swap"] = swap
    swappiness = host.get("MemorySwappiness")
    if isinstance(swappiness, int) and not isinstance(swappiness, bool) and swappiness >= 0:
        memory["swappiness"] = swappiness
    memory["disableOOMKiller"] = bool(host.get("OomKillDisable"))

    cpu: dict[str, Any] = {"shares": _int(host, "CpuShares")}
    nano = _int(host, "NanoCpus")
    quota, period = _int(host, "CpuQuota"), _int(host, "CpuPeriod")
    if nano and (quota or period):
        raise errdefs.InvalidParameter(
            "conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano < 0:
        raise errdefs.InvalidParameter(f"invalid NanoCpus: {nano}")
    if nano:
        period = 100000
        quota = nano * period // 1_000_000_000
    if quota:
        cpu["quota"] = quota
    if period:
        cpu["period"] = period
    if host.get("CpusetCpus"):
        cpu["cpus"] = str(host["CpusetCpus"])
    if host.get("CpusetMems"):
        cpu["mems"] = str(host["CpusetMems"])

    device_rules = [{"allow": True, "access": "rwm"}] if privileged else \
        [dict(rule) for rule in defaults.DEFAULT_DEVICE_RULES]
    for rule in host.get("DeviceCgroupRules") or []:
        device_rules.append(_cgroup_rule(str(rule)))
    resources: dict[str, Any] = {"devices": device_rules, "memory": memory, "cpu": cpu}
    pids = _int(host, "PidsLimit")
    if pids > 0:
        resources["pids"] = {"limit": pids}
    resources["blockIO"] = {"weight": _int(host, "BlkioWeight")}
    return resources


def _cgroup_rule(rule: str) -> dict[str, Any]:
    """``c 1:3 rwm`` -> a linux.resources.devices rule (``*`` for any number)."""
    parts = rule.split()
    if len(parts) != 3 or parts[0] not in ("a", "b", "c") or ":" not in parts[1]:
        raise errdefs.InvalidParameter(f"invalid device cgroup rule: {rule!r}")
    major, _, minor = parts[1].partition(":")

    def number(text: str) -> int | None:
        if text == "*":
            return None
        if not text.isdigit():
            raise errdefs.InvalidParameter(f"invalid device cgroup rule: {rule!r}")
        return int(text)

    return {"allow": True, "type": parts[0], "major": number(major), "minor": number(minor),
            "access": parts[2]}


def _devices(host: Mapping[str, Any], privileged: bool,
             host_devices: Sequence[Mapping[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """(linux.devices entry, cgroup access) for each device the container gets."""
    by_path = {str(d["path"]): d for d in host_devices}
    result: list[tuple[dict[str, Any], str]] = []
    if privileged:
        for device in host_devices:
            result.append((_device(device, str(device["path"])), "rwm"))
        return result
    for request in host.get("Devices") or []:
        source = str(request.get("PathOnHost") or "")
        target = str(request.get("PathInContainer") or source)
        access = str(request.get("CgroupPermissions") or "rwm")
        if source not in by_path:
            raise errdefs.InvalidParameter(
                f'error gathering device information while adding custom device "{source}": '
                "no such file or directory")
        result.append((_device(by_path[source], target), access))
    return result


def _device(device: Mapping[str, Any], path: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "type": device["type"], "major": device["major"],
                             "minor": device["minor"]}
    for key in ("fileMode", "uid", "gid"):
        if key in device:
            entry[key] = device[key]
    return entry


# ---------------------------------------------------------------------- mounts
def _mounts(container: ContainerSpecInput, privileged: bool,
            modes: Mapping[str, str]) -> list[dict[str, Any]]:
    host = container.host_config
    shm_size = _int(host, "ShmSize") or defaults.DEFAULT_SHM_SIZE
    mounts: list[dict[str, Any]] = []
    for default in defaults.DEFAULT_MOUNTS:
        mount = copy.deepcopy(default)
        destination = mount["destination"]
        if privileged and destination in ("/sys", "/sys/fs/cgroup"):
            mount["options"] = [o for o in mount["options"] if o != "ro"]
        if destination in ("/dev/shm", "/dev/mqueue") and modes.get("ipc") == "host":
            mount = {"destination": destination, "type": "bind", "source": destination,
                     "options": ["rbind", "rprivate"]}
        elif destination == "/dev/shm":
            mount["options"].append(f"size={shm_size}")
        mounts.append(mount)
    user_mounts = _user_mounts(host) + [copy.deepcopy(dict(m)) for m in container.extra_mounts]
    replaced = {m["destination"] for m in user_mounts}
    mounts = [m for m in mounts if m["destination"] not in replaced]
    if container.container_dir is not None:
        for name, destination in defaults.ETC_FILES:
            if destination in replaced:
                continue
            mounts.append({"destination": destination, "type": "bind",
                           "source": os.path.join(container.container_dir, name),
                           "options": ["rbind", "rprivate"]})
    user_mounts.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return mounts + user_mounts


def _user_mounts(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    for destination, options in (host.get("Tmpfs") or {}).items():
        if not str(destination).startswith("/"):
            raise errdefs.InvalidParameter(f"invalid tmpfs mount point: {destination}")
        mounts.append({"destination": str(destination), "type": "tmpfs", "source": "tmpfs",
                       "options": _tmpfs_options(str(options or ""))})
    for bind in host.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) < 2 or not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise errdefs.InvalidParameter(f"invalid bind mount spec: {bind!r} (only host "
                                           "paths are supported)")
        flags = parts[2].split(",") if len(parts) > 2 else []
        options = ["rbind", "ro" if "ro" in flags else "rw"]
        options.append(next((f for f in flags if f in ("private", "rprivate", "shared",
                                                        "rshared", "slave", "rslave")),
                            "rprivate"))
        mounts.append({"destination": parts[1], "type": "bind", "source": parts[0],
                       "options": options})
    for mount in host.get("Mounts") or []:
        kind = mount.get("Type", "volume")
        target = str(mount.get("Target") or "")
        if not target.startswith("/"):
            raise errdefs.InvalidParameter(f"invalid mount target: {target!r}")
        if kind == "bind":
            options = ["rbind", "ro" if mount.get("ReadOnly") else "rw"]
            propagation = (mount.get("BindOptions") or {}).get("Propagation") or "rprivate"
            options.append(str(propagation))
            mounts.append({"destination": target, "type": "bind",
                           "source": str(mount.get("Source")), "options": options})
        elif kind == "tmpfs":
            tmpfs = mount.get("TmpfsOptions") or {}
            options = list(defaults.TMPFS_DEFAULT_OPTIONS)
            if tmpfs.get("SizeBytes"):
                options.append(f"size={int(tmpfs['SizeBytes'])}")
            if tmpfs.get("Mode"):
                options.append(f"mode={int(tmpfs['Mode']):o}")
            if mount.get("ReadOnly"):
                options.append("ro")
            mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs",
                           "options": options})
        else:
            raise errdefs.NotImplementedFeature(f"mount type {kind!r} is not supported yet")
    return mounts


def _tmpfs_options(user: str) -> list[str]:
    """Docker's tmpfs defaults (noexec, nosuid, nodev) with the user's options applied."""
    options = list(defaults.TMPFS_DEFAULT_OPTIONS)
    opposite = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}
    for option in filter(None, (o.strip() for o in user.split(","))):
        if option in opposite:
            options = [o for o in options if o != opposite[option]]
        elif option not in options:
            options.append(option)
    return options
