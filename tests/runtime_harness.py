"""Bundles and a sampan-runc runner for tests that drive the runtime as callers do.

Each :class:`RuntimeHarness` owns one temp dir (bundles, the runtime's --root, logs) and, on
cleanup, force-deletes every container left under its root and removes the dir: tests clean up
pass or fail. Rootfs trees are unpacked once per session and copied per bundle.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("SAMPAN_IMAGES", REPO.parent / "shared" / "images"))
RUNTIME = str(REPO / "bin" / "sampan-runc")
BUSYBOX_ROOTFS_TAR = IMAGES / "busybox-rootfs.tar"
DEBIAN_ARCHIVE = IMAGES / "debian.tar.gz"

_CACHE = Path(tempfile.gettempdir()) / f"sampan-test-rootfs-{os.getpid()}"


def unique(prefix: str = "sampan-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _unpack_busybox(target: Path) -> None:
    target.mkdir(parents=True)
    with tarfile.open(BUSYBOX_ROOTFS_TAR) as tar:
        tar.extractall(target, filter="fully_trusted")


def _unpack_debian(target: Path) -> None:
    """The debian image is a gzip'ed docker-archive: apply its layers in order."""
    target.mkdir(parents=True)
    with tarfile.open(DEBIAN_ARCHIVE, "r:gz") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            member = archive.extractfile(layer)
            assert member is not None
            with tarfile.open(fileobj=member, mode="r|") as layer_tar:
                layer_tar.extractall(target, filter="fully_trusted")


def cached_rootfs(name: str) -> Path:
    """An unpacked rootfs shared by the session (never modified: bundles get copies)."""
    path = _CACHE / name
    if not path.exists():
        staging = _CACHE / f".{name}.{uuid.uuid4().hex[:6]}"
        {"busybox": _unpack_busybox, "debian": _unpack_debian}[name](staging)
        staging.rename(path)
    return path


def remove_rootfs_cache() -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


def base_config(args: list[str], terminal: bool = False) -> dict[str, Any]:
    """What `runc spec` writes, with terminal off and the given args (no cgroup ns)."""
    return {
        "ociVersion": "1.1.0",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "sampan",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


class RuntimeHarness:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sampan-test-"))
        self.root = self.dir / "state"
        self.log = self.dir / "runtime.log"
        # cgroups of this harness live under one parent, removed on cleanup
        self.cgroup_parent = unique("sampan-test-cg")

    def bundle(self, config: dict[str, Any], rootfs: str = "busybox",
               name: str | None = None) -> Path:
        bundle = self.dir / (name or unique("bundle"))
        bundle.mkdir()
        shutil.copytree(cached_rootfs(rootfs), bundle / "rootfs", symlinks=True)
        config = copy.deepcopy(config)
        linux = config.setdefault("linux", {})
        linux.setdefault("cgroupsPath", f"/{self.cgroup_parent}/{bundle.name}")
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def runtime(self, *args: str, input: bytes | None = None, timeout: float = 60,
                check: bool = False, log_format: str = "json",
                **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        argv = [RUNTIME, "--root", str(self.root), "--log", str(self.log),
                "--log-format", log_format, *args]
        result = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                                **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def run(self, config: dict[str, Any], rootfs: str = "busybox",
            container_id: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """`sampan-runc run` in the foreground: the container's output and exit code."""
        bundle = self.bundle(config, rootfs)
        return self.runtime("run", "--bundle", str(bundle), container_id or unique("c"),
                            timeout=timeout, stdin=subprocess.DEVNULL)

    def state(self, container_id: str) -> dict[str, Any]:
        result = self.runtime("state", container_id, check=True)
        state: dict[str, Any] = json.loads(result.stdout)
        return state

    def cleanup(self) -> None:
        if self.root.exists():
            for container_id in os.listdir(self.root):
                if (self.root / container_id / "state.json").exists():
                    self.runtime("delete", "--force", container_id, timeout=30)
        # v1/hybrid: one directory per hierarchy; pure v2: the parent sits at the root itself
        roots = [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
        for hierarchy in roots:
            leftover = hierarchy / self.cgroup_parent
            if leftover.is_dir() and not leftover.is_symlink():
                for child in sorted(leftover.rglob("*"), reverse=True):
                    if child.is_dir():
                        child.rmdir()
                leftover.rmdir()
        shutil.rmtree(self.dir, ignore_errors=True)
