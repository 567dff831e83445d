"""Container endpoints under ``/containers``.

Changes to ``ContainersBackend`` after the first version: (none yet)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, cast

from sampan import errdefs
from sampan.api import validate
from sampan.api.framing import DEFAULT_DETACH_KEYS, parse_detach_keys, stdcopy_frame
from sampan.api.http import (
    EmptyResponse,
    HijackResponse,
    JSONResponse,
    Request,
    Response,
    StreamResponse,
    json_line,
    json_stream,
    parse_timestamp,
)
from sampan.api.routers.exec import resize_args, stream_content_type
from sampan.api.routes import Route
from sampan.api.types import (
    JSON,
    AttachStream,
    Filters,
    LogEntry,
    OutputStream,
    WaitCondition,
)


class ContainersBackend(Protocol):
    """What the containers router needs from the daemon.

    Every ``id`` is a full ID, a unique prefix or a name; an unknown one raises
    ``errdefs.NotFound("No such container: <id>")``.
    """

    async def containers_list(
        self, *, all: bool, limit: int | None, size: bool, filters: Filters
    ) -> list[JSON]:
        """``GET /containers/json``: ``ContainerSummary`` list, newest first: ``Id``,
        ``Names`` (["/name"]), ``Image``, ``ImageID``, ``Command``, ``Created``, ``Ports``,
        ``Labels``, ``State`` ("running"...), ``Status`` ("Up 3 minutes (healthy)", "Exited
        (0) 2 seconds ago"), ``HostConfig{NetworkMode}``, ``NetworkSettings{Networks}``,
        ``Mounts``, and ``SizeRw``/``SizeRootFs`` with ``size``. Without ``all`` only running
        (and paused) containers, unless a filter needs otherwise as in Docker (``limit`` or
        ``before``/``since`` imply all). ``limit`` is None or > 0.
        Filter keys: id, name, label, status, ancestor, before, since, exited, health,
        network, volume, is-task, publish, expose. Errors: InvalidParameter."""
        ...

    async def container_create(
        self, *, name: str | None, platform: str | None, config: JSON, host_config: JSON,
        networking_config: JSON,
    ) -> JSON:
        """``POST /containers/create``: returns ``{"Id": ..., "Warnings": [...]}``.

        ``config`` is the body without ``HostConfig``/``NetworkingConfig`` (Docker's
        ``Config``: Image, Cmd, Entrypoint, Env, ...); the router has checked member types.
        Errors: NotFound ("No such image: busybox:latest": makes the CLI pull),
        Conflict (name in use: 'Conflict. The container name "/x" is already in use by
        container "<id>". You have to remove (or rename) that container to be able to reuse
        that name.'), InvalidParameter ("Invalid container name (w), only
        [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", bad HostConfig values),
        NotImplementedFeature (an option sampan does not support)."""
        ...

    async def container_inspect(self, id: str, *, size: bool) -> JSON:
        """Docker's ``ContainerJSON``: Id, Created, Path, Args, State{Status, Running, Paused,
        Restarting, OOMKilled, Dead, Pid, ExitCode, Error, StartedAt, FinishedAt, Health?},
        Image, Name ("/x"), RestartCount, Driver, Platform, HostConfig, GraphDriver, Mounts,
        Config, NetworkSettings, ... Errors: NotFound."""
        ...

    async def container_top(self, id: str, *, ps_args: str) -> JSON:
        """``{"Titles": [...], "Processes": [[...], ...]}`` of the container's processes
        (``ps_args`` as given to ps, default "-ef"). Errors: NotFound, Conflict (not
        running: "container x is not running")."""
        ...

    async def container_logs(
        self, id: str, *, follow: bool, stdout: bool, stderr: bool, since: float,
        until: float, timestamps: bool, tail: int | None,
    ) -> OutputStream:
        """The json-file log. ``since``/``until`` are Unix seconds, 0 meaning unset.
        ``tail`` None = all, else the last n lines. With ``follow`` the iterator continues
        until the container stops (and its log is drained) or the client goes.
        Errors: NotFound, InvalidParameter ("you must choose at least one stream"),
        NotImplementedFeature (log driver ``none``: 'configured logging driver does not
        support reading')."""
        ...

    async def container_changes(self, id: str) -> list[JSON]:
        """``[{"Path": "/tmp/x", "Kind": 0|1|2}]`` (0 modified, 1 added, 2 deleted).
        Errors: NotFound."""
        ...

    async def container_export(self, id: str) -> AsyncIterator[bytes]:
        """The container's filesystem as a tar stream (chunks of any size).
        Errors: NotFound, Conflict (removal in progress)."""
        ...

    async def container_stats(
        self, id: str, *, stream: bool, one_shot: bool
    ) -> AsyncIterator[JSON]:
        """Docker's ``StatsJSON`` (read, preread, pids_stats, cpu_stats, precpu_stats,
        memory_stats, blkio_stats, networks, name, id), one per second while ``stream``;
        without ``stream`` exactly one, with ``precpu_stats`` filled (unless ``one_shot``,
        where precpu may be empty as in Docker). A stopped container yields zeroed stats.
        Errors: NotFound."""
        ...

    async def container_resize(self, id: str, *, height: int, width: int) -> None:
        """Resize the container's pty. Errors: NotFound, Conflict (not running yet / no
        tty: the CLI retries)."""
        ...

    async def container_start(self, id: str) -> None:
        """Start a created or exited container. Errors: NotFound, NotModified (already
        running), Conflict (paused, being removed), System (the runtime's error text,
        e.g. 'failed to create task for container: exec: "nope": executable file not
        found in $PATH')."""
        ...

    async def container_stop(self, id: str, *, timeout: int | None, signal: str | None) -> None:
        """Send the stop signal (``signal`` or the container's StopSignal), then SIGKILL
        after ``timeout`` seconds (None: the container's StopTimeout or 10; -1: wait
        forever). Returns when the container has stopped. Errors: NotFound, NotModified
        (not running), InvalidParameter (bad signal)."""
        ...

    async def container_restart(self, id: str, *, timeout: int | None, signal: str | None) -> None:
        """Stop (as ``container_stop``, if running) then start. Errors: NotFound, System."""
        ...

    async def container_kill(self, id: str, *, signal: str | None) -> None:
        """Send ``signal`` (name like "SIGTERM"/"TERM" or number as text; None = SIGKILL).
        Errors: NotFound, Conflict ("container x is not running"), InvalidParameter (bad
        signal)."""
        ...

    async def container_update(self, id: str, update: JSON) -> JSON:
        """``POST /containers/{id}/update``: resources (Memory, MemorySwap,
        MemoryReservation, NanoCpus, CpuShares, CpuQuota, CpuPeriod, CpusetCpus, PidsLimit,
        BlkioWeight, ...) and ``RestartPolicy``. Returns ``{"Warnings": [...]}``.
        Errors: NotFound, InvalidParameter."""
        ...

    async def container_rename(self, id: str, *, name: str) -> None:
        """Errors: NotFound, Conflict (name in use), InvalidParameter (invalid name)."""
        ...

    async def container_pause(self, id: str) -> None:
        """Freeze. Errors: NotFound, Conflict ("container x is not running", already
        paused: "container x is already paused")."""
        ...

    async def container_unpause(self, id: str) -> None:
        """Thaw. Errors: NotFound, Conflict ("container x is not paused")."""
        ...

    async def container_attach(
        self, id: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool, stream: bool
    ) -> AttachStream:
        """Attach to the container's stdio. ``logs``: replay the log first; ``stream``:
        then follow live output (without it, the stream ends after the replay). Works on a
        created container (the CLI attaches before start: output from the start must not
        be lost). Stdin is connected only with ``stdin`` and ``OpenStdin``. When the
        container has ``StdinOnce``, closing stdin (``close_stdin``) closes the
        container's stdin. Several attachers at once. Detach keys are handled by the
        router. Errors: NotFound, Conflict (removal in progress)."""
        ...

    async def container_wait(self, id: str, *, condition: WaitCondition) -> Awaitable[JSON]:
        """Register a wait and return at once; the awaitable completes with
        ``{"StatusCode": n, "Error": None}`` (or ``{"Message": ...}`` in ``Error``).

        The router sends the 200 headers after this returns, then awaits (``docker run``
        starts the container only after the headers arrive). ``not-running``: done at once
        if the container is not running; ``next-exit``: the next exit after this call;
        ``removed``: when the container is removed (after AutoRemove). The registration
        must be in place when this returns (no exit may slip between it and ``start``).
        The router cancels the awaitable if the client goes away (``docker run -d``);
        that must affect nothing else. Errors (before headers): NotFound,
        InvalidParameter."""
        ...

    async def container_delete(self, id: str, *, force: bool, volumes: bool, link: bool) -> None:
        """Remove. Errors: NotFound, Conflict ("You cannot remove a running container x.
        Stop the container before attempting removal or force remove"),
        NotImplementedFeature (``link``)."""
        ...

    async def containers_prune(self, *, filters: Filters) -> JSON:
        """Remove stopped containers: ``{"ContainersDeleted": [ids] | None,
        "SpaceReclaimed": n}``. Filter keys: until, label, label!. Errors:
        InvalidParameter."""
        ...


# ----------------------------------------------------------------------------- handlers


def routes(backend: ContainersBackend) -> list[Route]:
    async def list_(request: Request) -> Response:
        limit = request.query_int("limit")
        if limit is not None and limit < -1:
            raise errdefs.InvalidParameter(f"invalid value for limit: {limit} (must be positive)")
        if limit is not None and limit <= 0:
            limit = None  # docker-py sends -1 for "no limit"
        return JSONResponse(
            await backend.containers_list(
                all=request.query_bool("all"),
                limit=limit,
                size=request.query_bool("size"),
                filters=request.filters(),
            )
        )

    async def create(request: Request) -> Response:
        body = await request.json_body(required=True)
        assert body is not None
        host_config = body.pop("HostConfig", None)
        networking = body.pop("NetworkingConfig", None)
        if host_config is not None and not isinstance(host_config, dict):
            raise errdefs.InvalidParameter("invalid type for HostConfig: expected object")
        if networking is not None and not isinstance(networking, dict):
            raise errdefs.InvalidParameter("invalid type for NetworkingConfig: expected object")
        validate.check_members(body, validate.CONFIG, "Config")
        validate.check_sub(body, "Healthcheck", validate.HEALTHCHECK, "Config")
        host_config = host_config or {}
        validate.check_members(host_config, validate.HOST_CONFIG, "HostConfig")
        validate.check_sub(host_config, "RestartPolicy", validate.RESTART_POLICY, "HostConfig")
        validate.check_sub(host_config, "LogConfig", validate.LOG_CONFIG, "HostConfig")
        if not body.get("Image"):
            raise errdefs.InvalidParameter("config cannot be empty in order to create a container")
        name = request.query_str("name") or None
        platform = request.query_str("platform") or None
        result = await backend.container_create(
            name=name,
            platform=platform,
            config=body,
            host_config=host_config,
            networking_config=networking or {},
        )
        return JSONResponse(result, status=201)

    async def inspect(request: Request) -> Response:
        return JSONResponse(
            await backend.container_inspect(request.params["id"], size=request.query_bool("size"))
        )

    async def top(request: Request) -> Response:
        return JSONResponse(
            await backend.container_top(
                request.params["id"], ps_args=request.query_str("ps_args") or "-ef"
            )
        )

    async def logs(request: Request) -> Response:
        stdout = request.query_bool("stdout")
        stderr = request.query_bool("stderr")
        if not (stdout or stderr):
            raise errdefs.InvalidParameter("Bad parameters: you must choose at least one stream")
        now = time.time()
        since = parse_timestamp(request.query_str("since"), "since", now) or 0.0
        until = parse_timestamp(request.query_str("until"), "until", now) or 0.0
        tail_raw = request.query_str("tail", "all").strip()
        tail: int | None = None
        if tail_raw not in ("", "all"):
            try:
                tail = int(tail_raw)
            except ValueError:
                raise errdefs.InvalidParameter(f"invalid value for tail: {tail_raw!r}") from None
            if tail < 0:
                tail = None
        output = await backend.container_logs(
            request.params["id"],
            follow=request.query_bool("follow"),
            stdout=stdout,
            stderr=stderr,
            since=since,
            until=until,
            timestamps=request.query_bool("timestamps"),
            tail=tail,
        )
        content_type = stream_content_type(request.version, output.tty)
        return StreamResponse(
            _frames(output.entries, output.tty), content_type=content_type, on_error=None
        )

    async def changes(request: Request) -> Response:
        return JSONResponse(await backend.container_changes(request.params["id"]))

    async def export(request: Request) -> Response:
        chunks = await backend.container_export(request.params["id"])
        return StreamResponse(chunks, content_type="application/x-tar")

    async def stats(request: Request) -> Response:
        stream = request.query_bool("stream", True)
        one_shot = request.query_bool("one-shot")
        if one_shot and stream:
            raise errdefs.InvalidParameter("cannot have stream=true and one-shot=true")
        items = await backend.container_stats(
            request.params["id"], stream=stream, one_shot=one_shot
        )
        if stream:
            return StreamResponse(json_stream(items))
        try:
            first = await anext(items, None)
        finally:
            await aclose(items)
        if first is None:
            raise errdefs.System(f"no stats for container {request.params['id']}")
        return JSONResponse(first)

    async def resize(request: Request) -> Response:
        height, width = resize_args(request)
        await backend.container_resize(request.params["id"], height=height, width=width)
        return EmptyResponse(200)

    async def start(request: Request) -> Response:
        body = await request.json_body()
        if body:
            raise errdefs.InvalidParameter(
                "starting container with non-empty request body was deprecated since API "
                "v1.22 and removed in v1.24"
            )
        await backend.container_start(request.params["id"])
        return EmptyResponse(204)

    def stop_args(request: Request) -> tuple[int | None, str | None]:
        timeout = request.query_int("t")
        signal = request.query_str("signal") or None
        return timeout, signal

    async def stop(request: Request) -> Response:
        timeout, signal = stop_args(request)
        await backend.container_stop(request.params["id"], timeout=timeout, signal=signal)
        return EmptyResponse(204)

    async def restart(request: Request) -> Response:
        timeout, signal = stop_args(request)
        await backend.container_restart(request.params["id"], timeout=timeout, signal=signal)
        return EmptyResponse(204)

    async def kill(request: Request) -> Response:
        signal = request.query_str("signal") or None
        await backend.container_kill(request.params["id"], signal=signal)
        return EmptyResponse(204)

    async def update(request: Request) -> Response:
        body = await request.json_body(required=True)
        assert body is not None
        validate.check_members(body, validate.RESOURCES, "UpdateConfig")
        validate.check_sub(body, "RestartPolicy", validate.RESTART_POLICY, "UpdateConfig")
        return JSONResponse(await backend.container_update(request.params["id"], body))

    async def rename(request: Request) -> Response:
        name = request.query_str("name")
        if not name:
            raise errdefs.InvalidParameter("name cannot be empty")
        await backend.container_rename(request.params["id"], name=name)
        return EmptyResponse(204)

    async def pause(request: Request) -> Response:
        await backend.container_pause(request.params["id"])
        return EmptyResponse(204)

    async def unpause(request: Request) -> Response:
        await backend.container_unpause(request.params["id"])
        return EmptyResponse(204)

    async def attach(request: Request) -> Response:
        keys = request.query_str("detachKeys") or DEFAULT_DETACH_KEYS
        detach_keys = parse_detach_keys(keys)
        stream = await backend.container_attach(
            request.params["id"],
            stdin=request.query_bool("stdin"),
            stdout=request.query_bool("stdout"),
            stderr=request.query_bool("stderr"),
            logs=request.query_bool("logs"),
            stream=request.query_bool("stream"),
        )
        return HijackResponse(
            stream=stream,
            detach_keys=detach_keys,
            content_type=stream_content_type(request.version, stream.tty),
            extra_headers=False,
        )

    async def wait(request: Request) -> Response:
        condition = request.query_str("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise errdefs.InvalidParameter(f"invalid condition: {condition!r}")
        result = await backend.container_wait(
            request.params["id"], condition=cast(WaitCondition, condition)
        )
        return StreamResponse(_wait_body(result), on_error=_wait_error)

    async def delete(request: Request) -> Response:
        await backend.container_delete(
            request.params["id"],
            force=request.query_bool("force"),
            volumes=request.query_bool("v"),
            link=request.query_bool("link"),
        )
        return EmptyResponse(204)

    async def prune(request: Request) -> Response:
        return JSONResponse(await backend.containers_prune(filters=request.filters()))

    return [
        Route("GET", "/containers/json", list_),
        Route("POST", "/containers/create", create),
        Route("POST", "/containers/prune", prune),
        Route("GET", "/containers/{id}/json", inspect),
        Route("GET", "/containers/{id}/top", top),
        Route("GET", "/containers/{id}/logs", logs),
        Route("GET", "/containers/{id}/changes", changes),
        Route("GET", "/containers/{id}/export", export),
        Route("GET", "/containers/{id}/stats", stats),
        Route("POST", "/containers/{id}/resize", resize),
        Route("POST", "/containers/{id}/start", start),
        Route("POST", "/containers/{id}/stop", stop),
        Route("POST", "/containers/{id}/restart", restart),
        Route("POST", "/containers/{id}/kill", kill),
        Route("POST", "/containers/{id}/update", update),
        Route("POST", "/containers/{id}/rename", rename),
        Route("POST", "/containers/{id}/pause", pause),
        Route("POST", "/containers/{id}/unpause", unpause),
        Route("POST", "/containers/{id}/attach", attach),
        Route("POST", "/containers/{id}/wait", wait),
        Route("DELETE", "/containers/{id}", delete),
    ]


async def _frames(entries: AsyncIterator[LogEntry], tty: bool) -> AsyncIterator[bytes]:
    try:
        async for kind, data in entries:
            if data:
                yield data if tty else stdcopy_frame(kind, data)
    finally:
        await aclose(entries)


async def _wait_body(result: Awaitable[JSON]) -> AsyncIterator[bytes]:
    future = asyncio.ensure_future(result)
    try:
        body = await future
    finally:
        if not future.done():
            future.cancel()
    yield json_line(body)


def _wait_error(exc: BaseException) -> bytes:
    return json_line({"StatusCode": -1, "Error": {"Message": str(exc) or type(exc).__name__}})


async def aclose(iterator: AsyncIterator[Any]) -> None:
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        await closer()
