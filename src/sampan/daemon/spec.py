"""The daemon's side of the exec driver: gather what ``supervisor.bundle.build_spec`` needs
from the host and the container's root (users, groups, capabilities, seccomp profile)."""

from __future__ import annotations

import json
import os
from typing import Any

from sampan import errdefs
from sampan.daemon.model import Container
from sampan.daemon.mounts import oci_mounts
from sampan.daemon.paths import DaemonPaths
from sampan.runtime.seccomp.docker_profile import load_docker_default, resolve_docker_profile
from sampan.supervisor.bundle import ContainerSpecInput, build_spec, tweak_capabilities


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def seccomp_profile(host_config: dict[str, Any]) -> dict[str, Any] | None:
    """The OCI seccomp for the container: Docker's default resolved for its capabilities,
    a profile given as ``seccomp=<json>`` (the CLI sends the file's content), or None."""
    if host_config.get("Privileged"):
        return None
    profile: dict[str, Any] | None = None
    for option in host_config.get("SecurityOpt") or []:
        key, _, value = str(option).partition("=" if "=" in str(option) else ":")
        if key != "seccomp":
            continue
        if value == "unconfined":
            return None
        if value.lstrip().startswith("{"):
            try:
                profile = json.loads(value)
            except ValueError as exc:
                raise errdefs.InvalidParameter(f"invalid seccomp profile: {exc}") from exc
        elif value:
            text = _read(value)
            if text is None:
                raise errdefs.InvalidParameter(f"cannot read seccomp profile {value}")
            profile = json.loads(text)
    if profile is None:
        profile = load_docker_default()
    capabilities = tweak_capabilities(host_config.get("CapAdd") or [],
                                      host_config.get("CapDrop") or [])
    return resolve_docker_profile(profile, capabilities)


def network_namespace(container: Container, paths: DaemonPaths) -> dict[str, str]:
    """The network namespace the network service made for the container (a file under
    ``<exec-root>/netns``), to be joined by the runtime; none for host mode (``none`` mode
    gets one too: a namespace with only its loopback, brought up)."""
    mode = str(container.host_config.get("NetworkMode") or "")
    path = os.path.join(paths.exec_root, "netns", container.id)
    if mode == "host" or not os.path.exists(path):
        return {}
    return {"network": path}


def build_container_spec(container: Container, rootfs: str, paths: DaemonPaths
                         ) -> dict[str, Any]:
    # Binds and Mounts were resolved into mount points at create (daemon/mounts.py)
    host_config = {k: v for k, v in container.host_config.items()
                   if k not in ("Binds", "Mounts")}
    spec_input = ContainerSpecInput(
        id=container.id,
        rootfs=rootfs,
        config=container.config,
        host_config=host_config,
        extra_mounts=oci_mounts(container.mount_points),
        container_dir=paths.container_dir(container.id),
        seccomp=seccomp_profile(container.host_config),
        passwd=_read(os.path.join(rootfs, "etc/passwd")),
        group=_read(os.path.join(rootfs, "etc/group")),
        namespace_paths=network_namespace(container, paths),
        cgroup_parent=paths.cgroup_parent,
    )
    return build_spec(spec_input)
