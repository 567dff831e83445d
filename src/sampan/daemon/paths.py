"""Where the daemon keeps things (see docs/daemon-architecture.md, "On disk")."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DaemonPaths:
    data_root: str
    exec_root: str
    cgroup_parent: str = "/sampan"  # cgroupsPath = <cgroup_parent>/<container id>

    @property
    def state_db(self) -> str:
        return os.path.join(self.data_root, "state.db")

    @property
    def image_root(self) -> str:
        return os.path.join(self.data_root, "image")

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.data_root, "containers", container_id)

    def log_path(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), f"{container_id}-json.log")

    def bundle(self, container_id: str) -> str:
        return os.path.join(self.exec_root, "bundles", container_id)

    def rootfs(self, container_id: str) -> str:
        return os.path.join(self.bundle(container_id), "rootfs")

    def runtime_root(self, runtime: str) -> str:
        return os.path.join(self.exec_root, "runtime", runtime)

    def container_files(self, container_id: str) -> dict[str, str]:
        directory = self.container_dir(container_id)
        return {
            "ResolvConfPath": os.path.join(directory, "resolv.conf"),
            "HostnamePath": os.path.join(directory, "hostname"),
            "HostsPath": os.path.join(directory, "hosts"),
            "LogPath": self.log_path(container_id),
        }
