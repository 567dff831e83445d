"""A real sampan-supervisor on a temp exec-root, with bundles built by the exec driver.

The supervisor is started the way sampand starts it (``SupervisorClient.connect`` runs
``sampan-supervisor --detach``) and stopped by the pid in its pid file; containers left over
are force-deleted through the runtime's --root, and their cgroups removed, pass or fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.runtime_harness import RuntimeHarness, cached_rootfs, unique

from sampan.supervisor.bundle import ContainerSpecInput, build_spec
from sampan.supervisor.client import SupervisorClient, read_frame

T = TypeVar("T")


def run(coroutine_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(_with_timeout(coroutine_fn))


async def _with_timeout(coroutine_fn: Callable[[], Awaitable[T]]) -> T:
    return await asyncio.wait_for(coroutine_fn(), 120)


class SupervisorHarness:
    def __init__(self) -> None:
        self.runtime = RuntimeHarness()
        self.dir = self.runtime.dir
        self.exec_root = str(self.dir / "exec")
        self.runtime_root = str(self.runtime.root)
        self.extra_roots: list[tuple[str, str]] = []  # (runtime, root) to clean

    # ------------------------------------------------------------------ supervisor
    async def client(self) -> SupervisorClient:
        return await SupervisorClient.connect(self.exec_root)

    def supervisor_pid(self) -> int | None:
        try:
            text = Path(self.exec_root, "supervisor.pid").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def supervisor_alive(self) -> bool:
        """Running (a zombie waiting for whichever subreaper adopted it is not)."""
        pid = self.supervisor_pid()
        if pid is None:
            return False
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state != "Z"

    def pss_kib(self) -> int:
        pid = self.supervisor_pid()
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
        raise AssertionError("no Pss in smaps_rollup")

    def stop_supervisor(self, sig: int = signal.SIGTERM) -> None:
        pid = self.supervisor_pid()
        if pid is None or not self.supervisor_alive():
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        # not our child (double-forked): poll /proc until it is gone or a zombie
        while time.monotonic() < deadline and self.supervisor_alive():
            time.sleep(0.02)

    # ------------------------------------------------------------------ bundles
    def bundle(self, args: list[str], *, tty: bool = False, host_config: Mapping[str, Any]
               | None = None, config: Mapping[str, Any] | None = None,
               seccomp: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """(container id, bundle path) for a busybox container running ``args``."""
        container_id = unique("sampan-test-sv")
        bundle = self.dir / container_id
        bundle.mkdir()
        shutil.copytree(cached_rootfs("busybox"), bundle / "rootfs", symlinks=True)
        etc = bundle / "etc-files"
        etc.mkdir()
        (etc / "hostname").write_text("sv-test\n")
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
        (etc / "resolv.conf").write_text("")
        rootfs = bundle / "rootfs"
        spec = build_spec(ContainerSpecInput(
            id=container_id, rootfs=str(rootfs),
            config={"Cmd": args, "Tty": tty, "Hostname": "sv-test", **(config or {})},
            host_config={"NetworkMode": "none", **(host_config or {})},
            container_dir=str(etc), seccomp=seccomp,
            passwd=_read(rootfs / "etc" / "passwd"), group=_read(rootfs / "etc" / "group"),
            cgroup_parent=f"/{self.runtime.cgroup_parent}"))
        (bundle / "config.json").write_text(json.dumps(spec))
        return container_id, str(bundle)

    def log_path(self, container_id: str) -> str:
        return str(self.dir / f"{container_id}-json.log")

    async def create(self, client: SupervisorClient, args: list[str], *, tty: bool = False,
                     open_stdin: bool = False, runtime: str = "sampan-runc",
                     log_max_size: int = 0, log_max_files: int = 1,
                     host_config: Mapping[str, Any] | None = None) -> str:
        container_id, bundle = self.bundle(args, tty=tty, host_config=host_config)
        root = self.runtime_root
        if runtime != "sampan-runc":
            root = str(self.dir / f"root-{runtime}")
            self.extra_roots.append((runtime, root))
        await client.create(container_id, bundle, runtime=runtime, runtime_root=root,
                            terminal=tty, open_stdin=open_stdin,
                            log_path=self.log_path(container_id), log_max_size=log_max_size,
                            log_max_files=log_max_files)
        return container_id

    def log_lines(self, container_id: str) -> list[dict[str, Any]]:
        path = Path(self.log_path(container_id))
        return [json.loads(line) for line in path.read_text().splitlines()]

    def cleanup(self) -> None:
        self.stop_supervisor()
        for runtime, root in self.extra_roots:
            if os.path.isdir(root):
                for name in os.listdir(root):
                    subprocess.run([runtime, "--root", root, "delete", "--force", name],
                                   capture_output=True, timeout=30)
        self.runtime.cleanup()


async def read_all(reader: asyncio.StreamReader) -> dict[int, bytes]:
    """Every attach frame until the end of the output, joined per stream."""
    streams: dict[int, bytes] = {}
    while True:
        item = await read_frame(reader)
        if item is None:
            return streams
        stream, data = item
        streams[stream] = streams.get(stream, b"") + data


async def read_until(reader: asyncio.StreamReader, needle: bytes) -> bytes:
    seen = b""
    while needle not in seen:
        item = await read_frame(reader)
        if item is None:
            raise AssertionError(f"output ended before {needle!r}; got {seen!r}")
        seen += item[1]
    return seen


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
