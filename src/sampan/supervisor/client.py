"""``SupervisorClient``: sampand's asyncio side of the supervisor protocol.

One control connection carries every request (replies matched by ``req``, so a pending
``wait`` does not hold up anything) and, once someone iterates :meth:`events`, the exit and
oom events. Each :meth:`attach` opens a connection of its own that becomes a raw stream.
If the supervisor is not running, :meth:`connect` starts it (``--detach``: it outlives us).
A lost connection fails the requests in flight with ``errdefs.Unavailable``; the next request
reconnects (starting the supervisor again if it died).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sampan import errdefs
from sampan.supervisor import protocol

STREAM_LIMIT = protocol.MAX_LINE


@dataclass(frozen=True)
class ExitInfo:
    id: str
    exec_id: str | None
    pid: int
    exit_code: int
    exited_at: str
    oom_killed: bool

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ExitInfo:
        return cls(id=str(message.get("id")), exec_id=message.get("exec_id"),
                   pid=int(message.get("pid") or 0), exit_code=int(message.get("exit_code", -1)),
                   exited_at=str(message.get("exited_at") or ""),
                   oom_killed=bool(message.get("oom_killed")))


def socket_path(exec_root: str) -> str:
    return os.path.join(exec_root, "supervisor.sock")


def default_supervisor_command() -> list[str]:
    """The fast launcher (repository ``bin/`` or beside our own program), else ``-m``."""
    here = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    repo_bin = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))), "bin")
    for directory in (here, repo_bin):
        candidate = os.path.join(directory, "sampan-supervisor")
        if directory and os.access(candidate, os.X_OK):
            return [candidate]
    return [sys.executable, "-m", "sampan.supervisor.server.main"]


async def start_supervisor(exec_root: str, command: Sequence[str] | None = None) -> None:
    """Run ``sampan-supervisor --detach`` and wait until it serves (or one already did).

    It runs in a worker thread with ``subprocess``: an asyncio subprocess transport would
    outlive the call (the detached grandchild) and complain when the loop closes.
    """
    argv = [*(command or default_supervisor_command()), "--exec-root", exec_root, "--detach"]
    loop = asyncio.get_running_loop()
    def run() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    try:
        result = await loop.run_in_executor(None, run)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise errdefs.Unavailable(f"cannot start the supervisor ({argv[0]}): {error}") from None
    if result.returncode != 0 or not result.stdout.startswith(b"ready"):
        text = (result.stderr or result.stdout).decode(errors="replace").strip()
        log = os.path.join(exec_root, "supervisor.log")
        raise errdefs.Unavailable(f"cannot start the supervisor ({argv[0]}): {text or 'no answer'}"
                                  f"; see {log}")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next attach frame (stream, data), or None at the end of the output."""
    try:
        header = await reader.readexactly(protocol.FRAME_HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    stream, size = protocol.FRAME_HEADER.unpack(header)
    try:
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError as error:
        data = error.partial
    return stream, data


class SupervisorClient:
    def __init__(self, exec_root: str, command: Sequence[str] | None = None,
                 start: bool = True) -> None:
        self.exec_root = exec_root
        self._command = list(command) if command else None
        self._start = start
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._subscribed = False
        self._next_req = 0
        self._connect_lock = asyncio.Lock()

    @classmethod
    async def connect(cls, exec_root: str, *, command: Sequence[str] | None = None,
                      start: bool = True) -> SupervisorClient:
        """A client of the supervisor serving ``exec_root`` (started when absent)."""
        client = cls(exec_root, command, start)
        await client._ensure_connected()
        return client

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
        self._connection_lost()

    # ------------------------------------------------------------------ plumbing
    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = socket_path(self.exec_root)
        try:
            return await asyncio.open_unix_connection(path, limit=STREAM_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError):
            if not self._start:
                raise errdefs.Unavailable(f"the supervisor at {path} is not running") from None
        await start_supervisor(self.exec_root, self._command)
        try:
            return await asyncio.open_unix_connection(path, limit=STREAM_LIMIT)
        except OSError as error:
            raise errdefs.Unavailable(f"cannot connect to the supervisor at {path}: "
                                      f"{error}") from None

    async def _ensure_connected(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            self._reader, self._writer = await self._open()
            self._reader_task = asyncio.get_running_loop().create_task(
                self._read_loop(self._reader))
            if self._queues:
                self._subscribed = False
                await self._subscribe_on(self._writer)
            return self._writer

    async def _subscribe_on(self, writer: asyncio.StreamWriter) -> None:
        if not self._subscribed:
            self._subscribed = True
            await self._send(writer, {"op": "subscribe"})

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                message = protocol.decode(line)
                req = message.get("req")
                if isinstance(req, int) and req in self._pending:
                    future = self._pending.pop(req)
                    if not future.done():
                        future.set_result(message)
                elif "event" in message:
                    for queue in self._queues:
                        queue.put_nowait(message)
        except (OSError, errdefs.SampanError, ValueError):
            pass
        finally:
            if reader is self._reader:
                self._connection_lost()

    def _connection_lost(self) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(errdefs.Unavailable("lost the connection to the supervisor"))
        for queue in self._queues:
            queue.put_nowait(None)
        self._subscribed = False
        self._reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _send(self, writer: asyncio.StreamWriter,
                    message: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        self._next_req += 1
        message["req"] = self._next_req
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_req] = future
        writer.write(protocol.encode(message))
        try:
            await writer.drain()
        except OSError:
            self._connection_lost()
        return future

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply's fields; errors raise ``errdefs``."""
        writer = await self._ensure_connected()
        future = await self._send(writer, {"op": op, **fields})
        reply = await future
        if not reply.get("ok"):
            raise protocol.error_from_reply(reply)
        return reply

    # ------------------------------------------------------------------ ops
    async def ping(self) -> dict[str, Any]:
        return await self.call("ping")

    async def create(self, id: str, bundle: str, *, runtime: str = "sampan-runc",
                     runtime_root: str, terminal: bool = False, open_stdin: bool = False,
                     log_path: str | None = None, log_max_size: int = 0,
                     log_max_files: int = 1) -> int:
        """Run ``<runtime> create``; the init's pid (it waits for :meth:`start`)."""
        reply = await self.call("create", id=id, bundle=bundle, runtime=runtime,
                                runtime_root=runtime_root, terminal=terminal,
                                open_stdin=open_stdin, log_path=log_path,
                                log_max_size=log_max_size, log_max_files=log_max_files)
        return int(reply["pid"])

    async def start(self, id: str) -> int:
        return int((await self.call("start", id=id))["pid"])

    async def exec(self, id: str, exec_id: str, process: dict[str, Any], *,
                   terminal: bool = False, open_stdin: bool = False,
                   detach: bool = False) -> int:
        """Start an exec process; unless ``detach``, its output waits for an :meth:`attach`."""
        reply = await self.call("exec", id=id, exec_id=exec_id, process=process,
                                terminal=terminal, open_stdin=open_stdin, detach=detach)
        return int(reply["pid"])

    async def kill(self, id: str, signal: int | str, *, exec_id: str | None = None,
                   all: bool = False) -> None:
        await self.call("kill", id=id, exec_id=exec_id, signal=signal, all=all)

    async def resize(self, id: str, height: int, width: int, *,
                     exec_id: str | None = None) -> None:
        await self.call("resize", id=id, exec_id=exec_id, height=height, width=width)

    async def delete(self, id: str, *, force: bool = False) -> ExitInfo:
        return ExitInfo.from_message(await self.call("delete", id=id, force=force))

    async def pause(self, id: str) -> None:
        await self.call("pause", id=id)

    async def resume(self, id: str) -> None:
        await self.call("resume", id=id)

    async def update(self, id: str, resources: dict[str, Any]) -> None:
        await self.call("update", id=id, resources=resources)

    async def state(self, id: str) -> dict[str, Any]:
        state: dict[str, Any] = (await self.call("state", id=id))["state"]
        return state

    async def pids(self, id: str) -> list[int]:
        return [int(pid) for pid in (await self.call("pids", id=id))["pids"]]

    async def wait(self, id: str, exec_id: str | None = None) -> ExitInfo:
        return ExitInfo.from_message(await self.call("wait", id=id, exec_id=exec_id))

    async def list(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = (await self.call("list"))["tasks"]
        return tasks

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Every exit and oom event from now on; raises ``Unavailable`` when the connection
        is lost (call again: the next subscription reconnects)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            writer = await self._ensure_connected()
            if not self._subscribed:
                self._subscribed = True
                reply = await (await self._send(writer, {"op": "subscribe"}))
                if not reply.get("ok"):
                    raise protocol.error_from_reply(reply)
            while True:
                event = await queue.get()
                if event is None:
                    raise errdefs.Unavailable("lost the connection to the supervisor")
                yield event
        finally:
            self._queues.discard(queue)

    async def attach(self, id: str, *, exec_id: str | None = None, stdin: bool = False,
                     stdout: bool = True, stderr: bool = True, keep_stdin: bool = False,
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw stream to the process: read frames with :func:`read_frame`, write stdin,
        ``write_eof()`` to close the process's stdin."""
        reader, writer = await self._open()
        writer.write(protocol.encode({"op": "attach", "req": 1, "id": id, "exec_id": exec_id,
                                      "stdin": stdin, "stdout": stdout, "stderr": stderr,
                                      "keep_stdin": keep_stdin}))
        try:
            await writer.drain()
            line = await reader.readline()
            if not line:
                raise errdefs.Unavailable("the supervisor closed the attach connection")
            reply = protocol.decode(line)
            if not reply.get("ok"):
                raise protocol.error_from_reply(reply)
        except BaseException:
            writer.close()
            raise
        return reader, writer
