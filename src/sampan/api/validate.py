"""Type checks of JSON request bodies, so a wrong type is a 400 naming the field (Docker's
Go decoder answers "json: cannot unmarshal string into Go struct field ...") rather than a
crash deeper down. ``null`` is accepted everywhere, as Go decodes it to the zero value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sampan import errdefs

Kind = Literal["str", "bool", "int", "number", "obj", "list", "strlist", "strslice", "strmap",
               "intlist"]


def _ok(value: Any, kind: Kind) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "obj":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "strslice":  # Docker's StrSlice: a string or a list of strings
        return isinstance(value, str) or _ok(value, "strlist")
    if kind == "strmap":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "intlist":
        return isinstance(value, list) and all(_ok(v, "int") and v is not None for v in value)
    raise AssertionError(kind)


_NAMES = {
    "str": "string", "bool": "bool", "int": "integer", "number": "number", "obj": "object",
    "list": "array", "strlist": "array of strings", "strslice": "string or array of strings",
    "strmap": "object of strings", "intlist": "array of integers",
}


def check_members(body: Mapping[str, Any], spec: Mapping[str, Kind], where: str) -> None:
    """Raise InvalidParameter for the first member of ``body`` whose type is not ``spec``'s.
    Members not in ``spec`` are not checked."""
    for name, kind in spec.items():
        if name in body and not _ok(body[name], kind):
            got = type(body[name]).__name__
            raise errdefs.InvalidParameter(
                f"invalid type for {where}.{name}: expected {_NAMES[kind]}, got {got}"
            )


CONFIG: dict[str, Kind] = {
    "Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool", "ExposedPorts": "obj", "Tty": "bool",
    "OpenStdin": "bool", "StdinOnce": "bool", "Env": "strlist", "Cmd": "strslice",
    "Healthcheck": "obj", "ArgsEscaped": "bool", "Image": "str", "Volumes": "obj",
    "WorkingDir": "str", "Entrypoint": "strslice", "NetworkDisabled": "bool",
    "MacAddress": "str", "OnBuild": "strlist", "Labels": "strmap", "StopSignal": "str",
    "StopTimeout": "int", "Shell": "strlist",
}

HEALTHCHECK: dict[str, Kind] = {
    "Test": "strlist", "Interval": "int", "Timeout": "int", "Retries": "int",
    "StartPeriod": "int", "StartInterval": "int",
}

RESOURCES: dict[str, Kind] = {
    "CpuShares": "int", "Memory": "int", "CgroupParent": "str", "BlkioWeight": "int",
    "BlkioWeightDevice": "list", "BlkioDeviceReadBps": "list", "BlkioDeviceWriteBps": "list",
    "BlkioDeviceReadIOps": "list", "BlkioDeviceWriteIOps": "list", "CpuPeriod": "int",
    "CpuQuota": "int", "CpuRealtimePeriod": "int", "CpuRealtimeRuntime": "int",
    "CpusetCpus": "str", "CpusetMems": "str", "Devices": "list", "DeviceCgroupRules": "strlist",
    "DeviceRequests": "list", "MemoryReservation": "int", "MemorySwap": "int",
    "MemorySwappiness": "int", "NanoCpus": "int", "OomKillDisable": "bool", "Init": "bool",
    "PidsLimit": "int", "Ulimits": "list", "CpuCount": "int", "CpuPercent": "int",
    "IOMaximumIOps": "int", "IOMaximumBandwidth": "int", "RestartPolicy": "obj",
}

HOST_CONFIG: dict[str, Kind] = {
    **RESOURCES,
    "Binds": "strlist", "ContainerIDFile": "str", "LogConfig": "obj", "NetworkMode": "str",
    "PortBindings": "obj", "AutoRemove": "bool", "VolumeDriver": "str",
    "VolumesFrom": "strlist", "Mounts": "list", "ConsoleSize": "intlist", "Annotations": "strmap",
    "CapAdd": "strlist", "CapDrop": "strlist", "CgroupnsMode": "str", "Dns": "strlist",
    "DnsOptions": "strlist", "DnsSearch": "strlist", "ExtraHosts": "strlist",
    "GroupAdd": "strlist", "IpcMode": "str", "Cgroup": "str", "Links": "strlist",
    "OomScoreAdj": "int", "PidMode": "str", "Privileged": "bool", "PublishAllPorts": "bool",
    "ReadonlyRootfs": "bool", "SecurityOpt": "strlist", "StorageOpt": "strmap",
    "Tmpfs": "strmap", "UTSMode": "str", "UsernsMode": "str", "ShmSize": "int",
    "Sysctls": "strmap", "Runtime": "str", "Isolation": "str", "MaskedPaths": "strlist",
    "ReadonlyPaths": "strlist",
}

RESTART_POLICY: dict[str, Kind] = {"Name": "str", "MaximumRetryCount": "int"}

LOG_CONFIG: dict[str, Kind] = {"Type": "str", "Config": "strmap"}

EXEC_CONFIG: dict[str, Kind] = {
    "AttachStdin": "bool", "AttachStdout": "bool", "AttachStderr": "bool",
    "ConsoleSize": "intlist", "DetachKeys": "str", "Tty": "bool", "Env": "strlist",
    "Cmd": "strlist", "Privileged": "bool", "User": "str", "WorkingDir": "str",
}

EXEC_START: dict[str, Kind] = {"Detach": "bool", "Tty": "bool", "ConsoleSize": "intlist"}


def check_sub(body: Mapping[str, Any], name: str, spec: Mapping[str, Kind], where: str) -> None:
    value = body.get(name)
    if isinstance(value, dict):
        check_members(value, spec, f"{where}.{name}")
