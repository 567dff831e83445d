"""``SystemService``: ping, version, info, events and disk usage."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import sampan
from sampan import errdefs
from sampan.daemon.containers import ContainerService
from sampan.daemon.events import EventBus, check_filters
from sampan.daemon.images import ImageService
from sampan.daemon.model import PAUSED, RUNNING
from sampan.daemon.paths import DaemonPaths
from sampan.daemon.timefmt import rfc3339_nano

DF_TYPES = frozenset({"container", "image", "volume", "build-cache"})


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> tuple[str, str]:
    try:
        with open("/etc/os-release") as handle:
            fields = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
    except OSError:
        return "Linux", ""
    return fields.get("PRETTY_NAME", "Linux").strip('"'), fields.get("VERSION_ID", "").strip('"')


def cgroup_version(root: str = "/sys/fs/cgroup") -> str:
    """"2" on a pure cgroup2 mount, else "1" (hybrid hosts count as v1, as in Docker)."""
    return "2" if os.path.exists(os.path.join(root, "cgroup.controllers")) else "1"


class VolumeUsage(Protocol):
    async def disk_usage(self) -> list[dict[str, Any]]: ...


class SystemService:
    def __init__(self, *, paths: DaemonPaths, containers: ContainerService,
                 images: ImageService, events: EventBus, runtimes: dict[str, str],
                 default_runtime: str, driver: str, daemon_id: str) -> None:
        self._paths = paths
        self._containers = containers
        self._images = images
        self._events = events
        self._runtimes = runtimes
        self._default_runtime = default_runtime
        self._driver = driver
        self._id = daemon_id
        self.ready = True
        self.volumes: VolumeUsage | None = None  # set by cmd/sampand.py

    async def ping(self) -> None:
        if not self.ready:
            raise errdefs.Unavailable("sampand is starting")

    async def version(self) -> dict[str, Any]:
        kernel = platform.release()
        python = platform.python_version()
        return {
            "Platform": {"Name": "Sampan"},
            "Components": [
                {"Name": "Engine", "Version": sampan.__version__,
                 "Details": {"Arch": _arch(), "BuildTime": "", "Experimental": "false",
                             "GitCommit": "", "GoVersion": f"python{python}",
                             "KernelVersion": kernel, "Os": "linux"}},
                {"Name": "sampan-supervisor", "Version": sampan.__version__,
                 "Details": {"GitCommit": ""}},
                {"Name": self._default_runtime, "Version": sampan.__version__,
                 "Details": {"GitCommit": ""}},
            ],
            "Version": sampan.__version__,
            "GitCommit": "",
            "GoVersion": f"python{python}",
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }

    async def info(self) -> dict[str, Any]:
        containers = self._containers.all()
        running = sum(1 for c in containers if c.state.status == RUNNING)
        paused = sum(1 for c in containers if c.state.status == PAUSED)
        os_name, os_version = _os_name()
        return {
            "ID": self._id,
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": await self._images.count(),
            "Driver": self._driver,
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None,
                        "Log": ["json-file", "none"]},
            "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": False,
            "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True,
            "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": rfc3339_nano(time.time_ns()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": self._events.listeners,
            "KernelVersion": platform.release(),
            "OperatingSystem": os_name,
            "OSVersion": os_version,
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                               "Mirrors": []},
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "GenericResources": None,
            "DockerRootDir": self._paths.data_root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": sampan.__version__,
            "Runtimes": {name: {"path": path} for name, path in self._runtimes.items()},
            "DefaultRuntime": self._default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "DefaultAddressPools": [],
            "Warnings": None,
            "PythonVersion": sys.version.split()[0],
        }

    async def events(self, *, since: float | None, until: float | None,
                     filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        check_filters(filters)
        since_ns = int((since or 0) * 1e9)
        until_ns = int((until or 0) * 1e9)
        if since_ns and until_ns and since_ns > until_ns:
            raise errdefs.InvalidParameter("`since` time cannot be after `until` time")
        return self._events.subscribe(since_ns, until_ns, filters)

    async def df(self, *, types: list[str]) -> dict[str, Any]:
        for kind in types:
            if kind not in DF_TYPES:
                raise errdefs.InvalidParameter(f"unknown object type: {kind}")
        wanted = set(types) or set(DF_TYPES)
        result: dict[str, Any] = {}
        if "image" in wanted:
            usage = await self._images.disk_usage()
            result["LayersSize"] = usage.get("LayersSize", 0)
            result["Images"] = usage.get("Images", [])
        if "container" in wanted:
            result["Containers"] = await self._containers.containers_list(
                all=True, limit=None, size=True, filters={})
        if "volume" in wanted:
            result["Volumes"] = (await self.volumes.disk_usage()
                                 if self.volumes is not None else [])
        if "build-cache" in wanted:
            result["BuildCache"] = []
        return result
