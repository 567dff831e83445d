"""Exec endpoints: ``POST /containers/{id}/exec``, ``POST /exec/{id}/start``,
``POST /exec/{id}/resize``, ``GET /exec/{id}/json``.

Changes to ``ExecBackend`` after the first version: (none yet)
"""

from __future__ import annotations

from typing import Protocol

from sampan import errdefs
from sampan.api import validate
from sampan.api.framing import DEFAULT_DETACH_KEYS, parse_detach_keys
from sampan.api.http import EmptyResponse, HijackResponse, JSONResponse, Request, Response
from sampan.api.routes import Route
from sampan.api.types import JSON, AttachStream


class ExecBackend(Protocol):
    """What the exec router needs from the daemon."""

    async def exec_create(self, container_id: str, config: JSON) -> str:
        """Create an exec in a running container; returns its ID (64 hex).

        ``config`` is Docker's ``ExecConfig`` body, type-checked by the router: ``Cmd``
        (non-empty list of str), ``AttachStdin``/``AttachStdout``/``AttachStderr``/``Tty``/
        ``Privileged`` (bool), ``Env`` (list of str or None), ``User``, ``WorkingDir``,
        ``DetachKeys`` (str), ``ConsoleSize`` ([h, w] or None).
        Errors: NotFound (no such container), Conflict ("container x is not running",
        paused: "container x is paused, unpause the container before exec")."""
        ...

    async def exec_start(
        self, id: str, *, detach: bool, tty: bool, console_size: tuple[int, int] | None
    ) -> AttachStream | None:
        """Start the exec. With ``detach`` it returns ``None`` once the process started;
        otherwise an ``AttachStream`` on the exec's stdio (as created: stdin only when
        ``AttachStdin``), ready before the process starts so no output is lost.
        ``tty`` is the start body's ``Tty`` (the create's ``Tty`` decides; this one is
        informational). Errors: NotFound (no such exec), Conflict ("exec x is already
        running"/has run, container not running)."""
        ...

    async def exec_resize(self, id: str, *, height: int, width: int) -> None:
        """Resize the exec's pty. Errors: NotFound, Conflict (no tty / not started yet:
        the CLI retries)."""
        ...

    async def exec_inspect(self, id: str) -> JSON:
        """Docker's ``ExecInspect``: ``ID``, ``Running``, ``ExitCode`` (None until it exited),
        ``ProcessConfig{tty, entrypoint, arguments, privileged, user}``, ``OpenStdin``,
        ``OpenStderr``, ``OpenStdout``, ``CanRemove``, ``ContainerID``, ``DetachKeys``,
        ``Pid``. Errors: NotFound ("No such exec instance: x")."""
        ...


# ----------------------------------------------------------------------------- handlers


def routes(backend: ExecBackend) -> list[Route]:
    # Detach keys given at exec create, kept until the exec starts (the backend need not
    # keep them); bounded so execs that never start do not pile up.
    detach_keys: dict[str, str] = {}

    async def create(request: Request) -> Response:
        body = await request.json_body(required=True)
        assert body is not None
        validate.check_members(body, validate.EXEC_CONFIG, "ExecConfig")
        cmd = body.get("Cmd")
        if not cmd:
            raise errdefs.InvalidParameter("no exec command specified")
        keys = body.get("DetachKeys") or ""
        if keys:
            parse_detach_keys(keys)
        exec_id = await backend.exec_create(request.params["id"], body)
        if keys:
            if len(detach_keys) >= 1024:
                detach_keys.pop(next(iter(detach_keys)))
            detach_keys[exec_id] = keys
        return JSONResponse({"Id": exec_id}, status=201)

    async def start(request: Request) -> Response:
        body = await request.json_body() or {}
        validate.check_members(body, validate.EXEC_START, "ExecStartConfig")
        size = body.get("ConsoleSize")
        console_size = None
        if size:
            if len(size) != 2:
                raise errdefs.InvalidParameter("ConsoleSize must be [height, width]")
            console_size = (int(size[0]), int(size[1]))
        exec_id = request.params["id"]
        stream = await backend.exec_start(
            exec_id,
            detach=bool(body.get("Detach")),
            tty=bool(body.get("Tty")),
            console_size=console_size,
        )
        if stream is None:
            return EmptyResponse(200)
        keys = detach_keys.pop(exec_id, "") or DEFAULT_DETACH_KEYS
        return HijackResponse(
            stream=stream,
            detach_keys=parse_detach_keys(keys),
            content_type=stream_content_type(request.version, stream.tty),
            extra_headers=True,
        )

    async def resize(request: Request) -> Response:
        height, width = resize_args(request)
        await backend.exec_resize(request.params["id"], height=height, width=width)
        return EmptyResponse(200)

    async def inspect(request: Request) -> Response:
        return JSONResponse(await backend.exec_inspect(request.params["id"]))

    return [
        Route("POST", "/containers/{id}/exec", create),
        Route("POST", "/exec/{id}/start", start),
        Route("POST", "/exec/{id}/resize", resize),
        Route("GET", "/exec/{id}/json", inspect),
    ]


def stream_content_type(version: tuple[int, int], tty: bool) -> str:
    """API 1.42+ says ``multiplexed-stream`` for stdcopy-framed streams."""
    if version >= (1, 42) and not tty:
        return "application/vnd.docker.multiplexed-stream"
    return "application/vnd.docker.raw-stream"


def resize_args(request: Request) -> tuple[int, int]:
    height = request.query_int("h", 0) or 0
    width = request.query_int("w", 0) or 0
    if height < 0 or width < 0 or height > 65535 or width > 65535:
        raise errdefs.InvalidParameter(f"invalid terminal size {height}x{width}")
    return height, width
