"""Docker's JSON shapes for containers: ``ContainerJSON`` (inspect) and ``ContainerSummary``
(list), from a :class:`Container` record (pure functions)."""

from __future__ import annotations

from typing import Any

from sampan.daemon.model import DEAD, PAUSED, RESTARTING, RUNNING, Container
from sampan.daemon.mounts import mounts_json
from sampan.daemon.status import state_word, status_string
from sampan.daemon.timefmt import rfc3339_nano


def network_name(container: Container) -> str:
    mode = container.host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _endpoint() -> dict[str, Any]:
    return {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": None, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def network_settings(container: Container, paths: dict[str, str]) -> dict[str, Any]:
    """Docker's NetworkSettings with empty values: until the network issue, a container has
    only its own loopback (or the host's network)."""
    return {
        "Bridge": "", "SandboxID": "", "SandboxKey": paths.get("SandboxKey", ""),
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": {}, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": {network_name(container): _endpoint()},
    }


def _health_json(container: Container) -> dict[str, Any] | None:
    health = container.state.health
    if health is None:
        return None
    return {"Status": health.status, "FailingStreak": health.failing_streak, "Log": health.log}


def state_json(container: Container) -> dict[str, Any]:
    state = container.state
    result: dict[str, Any] = {
        "Status": state_word(state),
        "Running": state.status in (RUNNING, PAUSED, RESTARTING),
        "Paused": state.status == PAUSED,
        "Restarting": state.status == RESTARTING,
        "OOMKilled": state.oom_killed,
        "Dead": state.status == DEAD,
        "Pid": state.pid if state.status in (RUNNING, PAUSED) else 0,
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": rfc3339_nano(state.started_at),
        "FinishedAt": rfc3339_nano(state.finished_at),
    }
    health = _health_json(container)
    if health is not None:
        result["Health"] = health
    return result


def inspect_json(container: Container, paths: dict[str, str], exec_ids: list[str],
                 graph_data: dict[str, str], size: tuple[int, int] | None) -> dict[str, Any]:
    """``paths``: ResolvConfPath, HostnamePath, HostsPath, LogPath (and SandboxKey)."""
    result: dict[str, Any] = {
        "Id": container.id,
        "Created": rfc3339_nano(container.created),
        "Path": container.path,
        "Args": container.args,
        "State": state_json(container),
        "Image": container.image_id,
        "ResolvConfPath": paths.get("ResolvConfPath", ""),
        "HostnamePath": paths.get("HostnamePath", ""),
        "HostsPath": paths.get("HostsPath", ""),
        "LogPath": paths.get("LogPath", ""),
        "Name": container.name,
        "RestartCount": container.restart_count,
        "Driver": container.driver,
        "Platform": container.platform,
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": container.host_config,
        "GraphDriver": {"Data": graph_data, "Name": container.driver},
        "Mounts": mounts_json(container.mount_points),
        "Config": container.config,
        "NetworkSettings": network_settings(container, paths),
    }
    if size is not None:
        result["SizeRw"], result["SizeRootFs"] = size
    return result


def command_string(container: Container) -> str:
    """``Command`` in ``docker ps``: Docker puts single quotes around arguments with a space
    (and only those: no escaping)."""
    args = [f"'{arg}'" if " " in arg else arg for arg in container.args]
    return " ".join([container.path, *args])


def summary_json(container: Container, now_ns: int,
                 size: tuple[int, int] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "Id": container.id,
        "Names": [container.name],
        "Image": container.image or container.image_id,
        "ImageID": container.image_id,
        "Command": command_string(container),
        "Created": container.created // 1_000_000_000,
        "Ports": [],
        "Labels": container.config.get("Labels") or {},
        "State": state_word(container.state),
        "Status": status_string(container.state, now_ns),
        "HostConfig": {"NetworkMode": container.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": {network_name(container): _endpoint()}},
        "Mounts": mounts_json(container.mount_points),
    }
    if size is not None:
        result["SizeRw"], result["SizeRootFs"] = size
    return result
