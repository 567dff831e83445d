"""An in-memory daemon behind the API server's backend Protocols, for the API tests.

It runs no containers: a "process" is a coroutine that understands a few commands, so the
real docker CLI and SDK can drive the server through whole flows (run, attach, exec, logs):
``echo ARGS``, ``cat`` (stdin to stdout), ``true``, ``false``, ``sleep N`` (until killed),
``sh -c 'echo a; echo b >&2; exit 3'`` (``;``-separated echo/exit/sleep/cat).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shlex
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from sampan import errdefs
from sampan.api.server import Backends, Server, serve
from sampan.api.types import JSON, Filters, LogEntry, OutputStream, RequestBody, WaitCondition

BUSYBOX_ID = "sha256:" + hashlib.sha256(b"busybox").hexdigest()


def _new_id(seed: str) -> str:
    return hashlib.sha256(f"{seed}{time.time_ns()}".encode()).hexdigest()


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


class FakeAttach:
    """An AttachStream over a FakeProcess."""

    def __init__(self, process: FakeProcess, stdin: bool, streams: set[int]) -> None:
        self.process = process
        self.queue: asyncio.Queue[LogEntry | None] = asyncio.Queue()
        self.stdin = stdin
        self.streams = streams
        self.closed = False
        process.attachers.append(self)
        if process.done:
            self.queue.put_nowait(None)

    @property
    def tty(self) -> bool:
        return self.process.tty

    async def read(self) -> LogEntry | None:
        while True:
            entry = await self.queue.get()
            if entry is None or entry[0] in self.streams or self.tty:
                return entry

    async def write_stdin(self, data: bytes) -> None:
        if self.stdin:
            self.process.stdin.put_nowait(data)

    async def close_stdin(self) -> None:
        if not self.stdin:
            return
        self.process.stdin_closes += 1
        if not self.tty and self.process.stdin_once:
            self.process.stdin.put_nowait(None)
        else:
            self.queue.put_nowait(None)

    async def close(self) -> None:
        self.closed = True
        if self in self.process.attachers:
            self.process.attachers.remove(self)


@dataclass
class FakeProcess:
    cmd: list[str]
    tty: bool = False
    stdin_once: bool = False
    attachers: list[FakeAttach] = field(default_factory=list)
    stdin: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    log: list[tuple[float, int, bytes]] = field(default_factory=list)
    exit_code: int | None = None
    done: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    stdin_closes: int = 0
    resized: list[tuple[int, int]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def emit(self, stream: int, data: bytes) -> None:
        self.log.append((time.time(), stream, data))
        for attacher in list(self.attachers):
            attacher.queue.put_nowait((stream, data))

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            code = await self._command(self.cmd)
        except asyncio.CancelledError:
            code = 137
        self.exit_code = code
        self.done = True
        for attacher in list(self.attachers):
            attacher.queue.put_nowait(None)
        self.exited.set()

    async def _command(self, cmd: list[str]) -> int:
        if not cmd:
            return 0
        name, args = cmd[0], cmd[1:]
        if name == "echo":
            text = " ".join(a for a in args if a != ">&2")
            self.emit(2 if ">&2" in args else 1, (text + "\n").encode())
            return 0
        if name == "true":
            return 0
        if name == "false":
            return 1
        if name == "exit":
            return int(args[0]) if args else 0
        if name == "cat":
            while True:
                data = await self.stdin.get()
                if data is None:
                    return 0
                self.emit(1, data)
        if name == "sleep":
            await self.killed.wait()
            return 137
        if name == "sh" and args[:1] == ["-c"]:
            for part in " ".join(args[1:]).split(";"):
                words = shlex.split(part)
                if not words:
                    continue
                if words[0] == "exit":
                    return int(words[1]) if len(words) > 1 else 0
                code = await self._command(words)
                if code == 137:
                    return code
            return 0
        self.emit(2, f"sh: {name}: not found\n".encode())
        return 127


@dataclass
class FakeContainer:
    id: str
    name: str
    config: JSON
    host_config: JSON
    created: float
    state: str = "created"
    process: FakeProcess | None = None
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def summary(self) -> JSON:
        status = {
            "created": "Created",
            "running": "Up Less than a second",
            "paused": "Up Less than a second (Paused)",
            "exited": f"Exited ({self.exit_code()}) Less than a second ago",
        }[self.state]
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.config.get("Image"),
            "ImageID": BUSYBOX_ID,
            "Command": " ".join(self.cmd()),
            "Created": int(self.created),
            "Ports": [],
            "Labels": self.config.get("Labels") or {},
            "State": self.state,
            "Status": status,
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode") or "none"},
            "NetworkSettings": {"Networks": {}},
            "Mounts": [],
        }

    def cmd(self) -> list[str]:
        cmd = self.config.get("Cmd") or ["sh"]
        return [cmd] if isinstance(cmd, str) else list(cmd)

    def exit_code(self) -> int:
        if self.process is None or self.process.exit_code is None:
            return 0
        return self.process.exit_code


class FakeDaemon:
    """Implements all four backend Protocols."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.execs: dict[str, tuple[FakeContainer, JSON, FakeProcess]] = {}
        self.images: dict[str, str] = {"busybox:latest": BUSYBOX_ID}
        self.events_log: list[JSON] = []
        self.event_queues: list[asyncio.Queue[JSON]] = []
        self.loaded_bytes = 0
        self.calls: list[str] = []
        self.reapers: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ helpers

    def emit_event(self, kind: str, action: str, actor: str, attrs: dict[str, str]) -> None:
        now = time.time()
        event = {
            "Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attrs},
            "scope": "local", "time": int(now), "timeNano": time.time_ns(),
        }
        if kind == "container":
            event.update(status=action, id=actor, **({"from": attrs.get("image", "")}))
        self.events_log.append(event)
        for queue in self.event_queues:
            queue.put_nowait(event)

    def find(self, ref: str) -> FakeContainer:
        ref = ref.lstrip("/")
        for container in self.containers.values():
            if container.name == ref:
                return container
        matches = [c for c in self.containers.values() if c.id.startswith(ref)]
        if len(matches) != 1 or not ref:
            raise errdefs.NotFound(f"No such container: {ref}")
        return matches[0]

    def image(self, name: str) -> str:
        full = name if ":" in name or name.startswith("sha256") else f"{name}:latest"
        if full in self.images:
            return self.images[full]
        if name in self.images.values():
            return name
        raise errdefs.NotFound(f"No such image: {full}")

    # ------------------------------------------------------------------ system

    async def ping(self) -> None:
        return None

    async def version(self) -> JSON:
        return {
            "Platform": {"Name": "Sampan Engine (fake)"},
            "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {}}],
            "Version": "0.1.0", "GitCommit": "fake", "GoVersion": "python3", "Os": "linux",
            "Arch": "amd64", "KernelVersion": "6.0", "BuildTime": "2024-01-01T00:00:00Z",
        }

    async def info(self) -> JSON:
        return {
            "ID": "FAKE", "Containers": len(self.containers),
            "ContainersRunning": sum(c.state == "running" for c in self.containers.values()),
            "ContainersPaused": 0, "ContainersStopped": 0, "Images": len(self.images),
            "Driver": "overlay2", "DriverStatus": [], "Plugins": {"Volume": [], "Network": [],
            "Log": ["json-file"]}, "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
            "LoggingDriver": "json-file", "Runtimes": {"sampan-runc": {"path": "sampan-runc"}},
            "DefaultRuntime": "sampan-runc", "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "NCPU": 2, "MemTotal": 1 << 30, "OSType": "linux", "Architecture": "x86_64",
            "ServerVersion": "0.1.0", "Name": "fake", "OperatingSystem": "Fake OS",
            "KernelVersion": "6.0", "DockerRootDir": "/tmp/fake", "Warnings": None,
            "Labels": [], "IndexServerAddress": "https://index.docker.io/v1/",
        }

    async def events(
        self, *, since: float | None, until: float | None, filters: Filters
    ) -> AsyncIterator[JSON]:
        for key in filters:
            if key not in ("type", "event", "container"):
                raise errdefs.InvalidParameter(f"invalid filter '{key}'")
        queue: asyncio.Queue[JSON] = asyncio.Queue()
        past = [e for e in self.events_log if since is not None and e["time"] >= int(since)]
        self.event_queues.append(queue)

        def wanted(event: JSON) -> bool:
            types = filters.get("type")
            actions = filters.get("event")
            return (not types or event["Type"] in types) and (
                not actions or event["Action"] in actions
            )

        async def generate() -> AsyncIterator[JSON]:
            try:
                for event in past:
                    if wanted(event):
                        yield event
                while True:
                    timeout = None if until is None else max(0.0, until - time.time())
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        return
                    if wanted(event):
                        yield event
            finally:
                self.event_queues.remove(queue)

        return generate()

    async def df(self, *, types: list[str]) -> JSON:
        return {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [],
                "BuildCache": []}

    # ------------------------------------------------------------------ containers

    async def containers_list(
        self, *, all: bool, limit: int | None, size: bool, filters: Filters
    ) -> list[JSON]:
        result = [
            c.summary() for c in sorted(self.containers.values(), key=lambda c: -c.created)
            if all or c.state in ("running", "paused")
        ]
        for status in filters.get("status", []):
            result = [s for s in result if s["State"] == status]
        return result[:limit] if limit else result

    async def container_create(
        self, *, name: str | None, platform: str | None, config: JSON, host_config: JSON,
        networking_config: JSON,
    ) -> JSON:
        self.image(config["Image"])
        if name is not None:
            import re

            if not re.match(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$", name):
                raise errdefs.InvalidParameter(
                    f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            name = name.lstrip("/")
            for other in self.containers.values():
                if other.name == name:
                    raise errdefs.Conflict(
                        f'Conflict. The container name "/{name}" is already in use by '
                        f'container "{other.id}". You have to remove (or rename) that '
                        "container to be able to reuse that name."
                    )
        cid = _new_id("c")
        container = FakeContainer(
            id=cid, name=name or f"fake_{cid[:6]}", config=config, host_config=host_config,
            created=time.time(),
        )
        container.process = FakeProcess(
            container.cmd(), tty=container.tty, stdin_once=bool(config.get("StdinOnce"))
        )
        self.containers[cid] = container
        self.emit_event("container", "create", cid, {"name": container.name,
                                                      "image": config["Image"]})
        return {"Id": cid, "Warnings": []}

    async def container_inspect(self, id: str, *, size: bool) -> JSON:
        c = self.find(id)
        return {
            "Id": c.id, "Name": f"/{c.name}", "Created": _rfc3339(c.created),
            "Path": c.cmd()[0], "Args": c.cmd()[1:], "Image": BUSYBOX_ID,
            "State": {
                "Status": c.state, "Running": c.state in ("running", "paused"),
                "Paused": c.state == "paused", "Restarting": False, "OOMKilled": False,
                "Dead": False, "Pid": 4242 if c.state == "running" else 0,
                "ExitCode": c.exit_code(), "Error": "",
                "StartedAt": _rfc3339(c.started_at), "FinishedAt": _rfc3339(c.finished_at),
            },
            "Config": {**c.config, "Cmd": c.cmd()},
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}, **c.host_config},
            "Mounts": [], "NetworkSettings": {"Networks": {}, "Ports": {}},
            "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
        }

    async def container_top(self, id: str, *, ps_args: str) -> JSON:
        c = self.find(id)
        if c.state != "running":
            raise errdefs.Conflict(f"container {c.id} is not running")
        return {"Titles": ["PID", "CMD"], "Processes": [["4242", " ".join(c.cmd())]]}

    async def container_logs(
        self, id: str, *, follow: bool, stdout: bool, stderr: bool, since: float,
        until: float, timestamps: bool, tail: int | None,
    ) -> OutputStream:
        c = self.find(id)
        process = c.process
        assert process is not None
        wanted = {1} if stdout else set()
        if stderr:
            wanted.add(2)

        async def generate() -> AsyncIterator[LogEntry]:
            seen = 0
            records = process.log if tail is None else process.log[max(0, len(process.log) - tail):]
            start_index = len(process.log) - len(records)
            seen = start_index
            while True:
                while seen < len(process.log):
                    ts, stream, data = process.log[seen]
                    seen += 1
                    if stream in wanted and ts >= since and (not until or ts <= until):
                        yield stream, (f"{_rfc3339(ts)} ".encode() if timestamps else b"") + data
                if not follow or process.done or c.state == "created":
                    return
                await asyncio.sleep(0.02)

        return OutputStream(tty=c.tty, entries=generate())

    async def container_changes(self, id: str) -> list[JSON]:
        self.find(id)
        return [{"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/x", "Kind": 1}]

    async def container_export(self, id: str) -> AsyncIterator[bytes]:
        self.find(id)

        async def generate() -> AsyncIterator[bytes]:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                info = tarfile.TarInfo("hello.txt")
                info.size = 3
                tar.addfile(info, io.BytesIO(b"hi\n"))
            yield buffer.getvalue()

        return generate()

    async def container_stats(
        self, id: str, *, stream: bool, one_shot: bool
    ) -> AsyncIterator[JSON]:
        c = self.find(id)

        async def generate() -> AsyncIterator[JSON]:
            n = 0
            while True:
                n += 1
                yield {
                    "read": _rfc3339(time.time()), "preread": _rfc3339(time.time() - 1),
                    "id": c.id, "name": f"/{c.name}", "pids_stats": {"current": 1},
                    "cpu_stats": {"cpu_usage": {"total_usage": 2000 * n}, "online_cpus": 2,
                                  "system_cpu_usage": 100000 * n},
                    "precpu_stats": {"cpu_usage": {"total_usage": 1000 * n}, "online_cpus": 2,
                                     "system_cpu_usage": 50000 * n},
                    "memory_stats": {"usage": 1 << 20, "limit": 1 << 30, "stats": {}},
                    "blkio_stats": {}, "networks": {},
                }
                if not stream:
                    return
                await asyncio.sleep(0.2)

        return generate()

    async def container_resize(self, id: str, *, height: int, width: int) -> None:
        c = self.find(id)
        if c.state != "running":
            raise errdefs.Conflict(f"container {c.id} is not running")
        assert c.process is not None
        c.process.resized.append((height, width))

    async def container_start(self, id: str) -> None:
        c = self.find(id)
        if c.state == "running":
            raise errdefs.NotModified(f"container {c.id} is already running")
        if c.state == "exited":
            c.process = FakeProcess(
                c.cmd(), tty=c.tty, stdin_once=bool(c.config.get("StdinOnce"))
            )
        assert c.process is not None
        c.state = "running"
        c.started_at = time.time()
        c.process.start()
        self.emit_event("container", "start", c.id, {"name": c.name})
        self.reapers.add(asyncio.ensure_future(self._reap(c, c.process)))

    async def _reap(self, c: FakeContainer, process: FakeProcess) -> None:
        await process.exited.wait()
        c.state = "exited"
        c.finished_at = time.time()
        self.emit_event("container", "die", c.id, {"name": c.name,
                                                   "exitCode": str(process.exit_code)})
        if c.host_config.get("AutoRemove"):
            await self._remove(c)

    async def _remove(self, c: FakeContainer) -> None:
        self.containers.pop(c.id, None)
        self.emit_event("container", "destroy", c.id, {"name": c.name})
        c.removed.set()

    async def container_stop(self, id: str, *, timeout: int | None, signal: str | None) -> None:
        c = self.find(id)
        if c.state not in ("running", "paused"):
            raise errdefs.NotModified(f"container {c.id} is not running")
        await self._kill(c)

    async def _kill(self, c: FakeContainer) -> None:
        assert c.process is not None
        c.process.killed.set()
        if c.process.task is not None:
            c.process.task.cancel()
        await c.process.exited.wait()
        await asyncio.sleep(0)

    async def container_restart(
        self, id: str, *, timeout: int | None, signal: str | None
    ) -> None:
        c = self.find(id)
        if c.state == "running":
            await self._kill(c)
            while c.state != "exited":
                await asyncio.sleep(0.01)
        await self.container_start(c.id)

    async def container_kill(self, id: str, *, signal: str | None) -> None:
        c = self.find(id)
        if c.state != "running":
            raise errdefs.Conflict(f"container {c.id} is not running")
        if signal not in (None, "SIGKILL", "KILL", "9", "SIGTERM", "TERM", "15", "SIGINT"):
            raise errdefs.InvalidParameter(f"invalid signal: {signal}")
        await self._kill(c)

    async def container_update(self, id: str, update: JSON) -> JSON:
        c = self.find(id)
        c.host_config.update(update)
        return {"Warnings": []}

    async def container_rename(self, id: str, *, name: str) -> None:
        c = self.find(id)
        c.name = name.lstrip("/")

    async def container_pause(self, id: str) -> None:
        c = self.find(id)
        if c.state != "running":
            raise errdefs.Conflict(f"container {c.id} is not running")
        c.state = "paused"

    async def container_unpause(self, id: str) -> None:
        c = self.find(id)
        if c.state != "paused":
            raise errdefs.Conflict(f"container {c.id} is not paused")
        c.state = "running"

    async def container_attach(
        self, id: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool, stream: bool
    ) -> FakeAttach:
        c = self.find(id)
        assert c.process is not None
        streams = ({1} if stdout else set()) | ({2} if stderr else set())
        attach = FakeAttach(c.process, stdin and bool(c.config.get("OpenStdin")), streams)
        if logs:
            for _, kind, data in c.process.log:
                attach.queue._queue.appendleft((kind, data))  # type: ignore[attr-defined]
        return attach

    async def container_wait(self, id: str, *, condition: WaitCondition) -> Awaitable[JSON]:
        c = self.find(id)
        process = c.process
        assert process is not None
        initial_state = c.state

        async def wait() -> JSON:
            if condition == "removed":
                await c.removed.wait()
            elif condition == "not-running" and initial_state not in ("running", "paused"):
                pass
            else:
                current = c.process
                assert current is not None
                if initial_state == "exited" and condition == "next-exit":
                    while c.process is current:
                        await asyncio.sleep(0.01)
                    current = c.process
                    assert current is not None
                await current.exited.wait()
            return {"StatusCode": c.exit_code(), "Error": None}

        return asyncio.ensure_future(wait())

    async def container_delete(self, id: str, *, force: bool, volumes: bool, link: bool) -> None:
        c = self.find(id)
        if c.state in ("running", "paused"):
            if not force:
                raise errdefs.Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            await self._kill(c)
        await self._remove(c)

    async def containers_prune(self, *, filters: Filters) -> JSON:
        gone = [c for c in self.containers.values() if c.state == "exited"]
        for c in gone:
            await self._remove(c)
        return {"ContainersDeleted": [c.id for c in gone] or None, "SpaceReclaimed": 0}

    # ------------------------------------------------------------------ exec

    async def exec_create(self, container_id: str, config: JSON) -> str:
        c = self.find(container_id)
        if c.state != "running":
            raise errdefs.Conflict(f"container {c.id} is not running")
        exec_id = _new_id("e")
        tty = bool(config.get("Tty"))
        process = FakeProcess(list(config["Cmd"]), tty=tty, stdin_once=not tty)
        self.execs[exec_id] = (c, config, process)
        return exec_id

    async def exec_start(
        self, id: str, *, detach: bool, tty: bool, console_size: tuple[int, int] | None
    ) -> FakeAttach | None:
        if id not in self.execs:
            raise errdefs.NotFound(f"No such exec instance: {id}")
        _, config, process = self.execs[id]
        if process.task is not None:
            raise errdefs.Conflict(f"exec {id} has already been started")
        attach = None
        if not detach:
            attach = FakeAttach(process, bool(config.get("AttachStdin")), {1, 2})
        process.start()
        return attach

    async def exec_resize(self, id: str, *, height: int, width: int) -> None:
        if id not in self.execs:
            raise errdefs.NotFound(f"No such exec instance: {id}")
        self.execs[id][2].resized.append((height, width))

    async def exec_inspect(self, id: str) -> JSON:
        if id not in self.execs:
            raise errdefs.NotFound(f"No such exec instance: {id}")
        c, config, process = self.execs[id]
        return {
            "ID": id, "Running": process.task is not None and not process.done,
            "ExitCode": process.exit_code, "ContainerID": c.id, "Pid": 4343,
            "ProcessConfig": {"tty": process.tty, "entrypoint": process.cmd[0],
                              "arguments": process.cmd[1:], "privileged": False},
            "OpenStdin": bool(config.get("AttachStdin")), "OpenStdout": True,
            "OpenStderr": True, "CanRemove": False, "DetachKeys": "",
        }

    # ------------------------------------------------------------------ images

    async def images_list(
        self, *, all: bool, filters: Filters, shared_size: bool, digests: bool
    ) -> list[JSON]:
        by_id: dict[str, list[str]] = {}
        for name, image_id in self.images.items():
            by_id.setdefault(image_id, []).append(name)
        return [
            {"Id": image_id, "RepoTags": names, "RepoDigests": [], "Created": 1700000000,
             "Size": 4096, "SharedSize": -1, "Labels": {}, "Containers": -1, "ParentId": ""}
            for image_id, names in by_id.items()
        ]

    async def image_inspect(self, name: str) -> JSON:
        image_id = self.image(name)
        tags = [n for n, i in self.images.items() if i == image_id]
        return {"Id": image_id, "RepoTags": tags, "Size": 4096, "Os": "linux",
                "Architecture": "amd64", "Config": {"Cmd": ["sh"]}}

    async def image_history(self, name: str) -> list[JSON]:
        image_id = self.image(name)
        return [{"Id": image_id, "Created": 1700000000, "CreatedBy": "fake", "Tags": None,
                 "Size": 4096, "Comment": ""}]

    async def image_tag(self, name: str, *, repo: str, tag: str) -> None:
        self.images[f"{repo}:{tag or 'latest'}"] = self.image(name)

    async def image_delete(self, name: str, *, force: bool, noprune: bool) -> list[JSON]:
        image_id = self.image(name)
        full = name if ":" in name else f"{name}:latest"
        self.images.pop(full, None)
        result: list[JSON] = [{"Untagged": full}]
        if image_id not in self.images.values():
            result.append({"Deleted": image_id})
        return result

    async def images_get(self, names: list[str]) -> AsyncIterator[bytes]:
        for name in names:
            self.image(name)

        async def generate() -> AsyncIterator[bytes]:
            for name in names:
                yield f"image {name}\n".encode().ljust(512, b"\0")

        return generate()

    async def images_load(self, body: RequestBody, *, quiet: bool) -> AsyncIterator[JSON]:
        async def generate() -> AsyncIterator[JSON]:
            digest = hashlib.sha256()
            total = 0
            async for chunk in body:
                total += len(chunk)
                digest.update(chunk)
            self.loaded_bytes = total
            if total == 0:
                raise errdefs.InvalidParameter("empty archive")
            image_id = "sha256:" + digest.hexdigest()
            self.images["loaded:latest"] = image_id
            if not quiet:
                yield {"status": "Loading layer", "id": image_id[7:19],
                       "progressDetail": {"current": total, "total": total}}
            yield {"stream": "Loaded image: loaded:latest\n"}

        return generate()

    async def image_import(
        self, body: RequestBody, *, source: str, repo: str, tag: str, message: str,
        changes: list[str], platform: str,
    ) -> AsyncIterator[JSON]:
        if source != "-":
            raise errdefs.NotImplementedFeature("importing from a URL is not supported")

        async def generate() -> AsyncIterator[JSON]:
            digest = hashlib.sha256()
            async for chunk in body:
                digest.update(chunk)
            image_id = "sha256:" + digest.hexdigest()
            if repo:
                self.images[f"{repo}:{tag or 'latest'}"] = image_id
            yield {"status": image_id}

        return generate()

    async def image_commit(
        self, *, container: str, repo: str, tag: str, comment: str, author: str, pause: bool,
        changes: list[str], config: JSON | None,
    ) -> JSON:
        c = self.find(container)
        image_id = "sha256:" + _new_id(c.id)
        if repo:
            self.images[f"{repo}:{tag or 'latest'}"] = image_id
        return {"Id": image_id}

    async def images_prune(self, *, filters: Filters) -> JSON:
        return {"ImagesDeleted": None, "SpaceReclaimed": 0}


def fake_backends(daemon: FakeDaemon | None = None) -> tuple[Backends, FakeDaemon]:
    daemon = daemon or FakeDaemon()
    return Backends(system=daemon, containers=daemon, exec=daemon, images=daemon), daemon


class RunningServer:
    """The real API server over a FakeDaemon, on its own event loop in a thread, so that
    blocking clients (the docker CLI, the docker SDK, raw sockets) can drive it."""

    def __init__(self, socket_path: str, tcp: tuple[str, int] | None = None) -> None:
        self.socket_path = socket_path
        self.tcp = tcp
        self.loop = asyncio.new_event_loop()
        self.daemon = FakeDaemon()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Server | None = None

    def __enter__(self) -> RunningServer:
        self._thread.start()
        backends, _ = fake_backends(self.daemon)
        self._server = self.call(serve(self.socket_path, backends, tcp=self.tcp))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self.call(self._server.close())
        self.call(_cancel_other_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, coro: Awaitable[Any]) -> Any:
        async def run() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    @property
    def server(self) -> Server:
        assert self._server is not None
        return self._server

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"


async def _cancel_other_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
