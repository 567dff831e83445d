"""System endpoints: ``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``.

Changes to ``SystemBackend`` after the first version: (none yet)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

from sampan import errdefs
from sampan.api.http import (
    BytesResponse,
    JSONResponse,
    Request,
    Response,
    StreamResponse,
    in_band_error,
    json_stream,
    parse_timestamp,
)
from sampan.api.routes import Route
from sampan.api.types import JSON, Filters
from sampan.api.version import API_VERSION, MIN_API_VERSION, format_version


class SystemBackend(Protocol):
    """What the system router needs from the daemon."""

    async def ping(self) -> None:
        """Raise ``errdefs.Unavailable`` when the daemon cannot serve (e.g. still starting).
        The router answers ``OK`` otherwise."""
        ...

    async def version(self) -> JSON:
        """Docker's ``SystemVersion``: ``Platform{Name}``, ``Components[{Name, Version,
        Details}]``, ``Version``, ``GitCommit``, ``GoVersion`` (may be the Python version),
        ``Os``, ``Arch``, ``KernelVersion``, ``BuildTime``. The CLI prints the ``Engine``
        component's ``Details`` (GitCommit, GoVersion, Os, Arch, KernelVersion, BuildTime,
        Experimental: "false"), so fill those too. The router sets ``ApiVersion`` and
        ``MinAPIVersion`` (top level and in the Engine's Details) itself."""
        ...

    async def info(self) -> JSON:
        """Docker's ``SystemInfo`` (see wire/system.md): ``ID``, ``Containers*``, ``Images``,
        ``Driver``, ``DriverStatus``, ``Plugins``, ``CgroupDriver``, ``CgroupVersion``,
        ``LoggingDriver``, ``Runtimes``, ``DefaultRuntime``, ``SecurityOptions``,
        ``Swarm{LocalNodeState: "inactive", ...}``, ``NCPU``, ``MemTotal``, ``OSType``,
        ``Architecture``, ``ServerVersion``, ``DockerRootDir``, ``Warnings``, ..."""
        ...

    async def events(
        self, *, since: float | None, until: float | None, filters: Filters
    ) -> AsyncIterator[JSON]:
        """Events as ``{Type, Action, Actor{ID, Attributes}, scope: "local", time, timeNano}``
        (plus legacy ``status``, ``id``, ``from`` for containers), oldest first.

        ``since``/``until`` are Unix times in seconds (fractions allowed; the router parses
        Docker's forms: ``1700000000``, ``1700000000.123``, RFC 3339 and durations such as
        ``10m`` relative to now). Past events from ``since`` are replayed first. Without
        ``until`` the iterator never ends (the router stops it when the client goes);
        with ``until`` it ends once that time has passed.
        ``filters`` keys: container, event, image, label, type, daemon, network, volume.
        Errors: InvalidParameter (unknown filter key, since after until)."""
        ...

    async def df(self, *, types: list[str]) -> JSON:
        """``/system/df``: ``LayersSize``, ``Images``, ``Containers``, ``Volumes``,
        ``BuildCache``. ``types`` (API 1.42+ ``type`` parameter, repeated) limits what is
        computed: subset of ``container``, ``image``, ``volume``, ``build-cache``; empty means
        all. Errors: InvalidParameter (unknown type)."""
        ...


# ----------------------------------------------------------------------------- handlers


def routes(backend: SystemBackend) -> list[Route]:
    async def ping(request: Request) -> Response:
        await backend.ping()
        headers = [
            ("Builder-Version", "1"),
            ("Swarm", "inactive"),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
        ]
        return BytesResponse(b"" if request.method == "HEAD" else b"OK", headers=headers)

    async def version(request: Request) -> Response:
        body = dict(await backend.version())
        api, minimum = format_version(API_VERSION), format_version(MIN_API_VERSION)
        body["ApiVersion"] = api
        body["MinAPIVersion"] = minimum
        for component in body.get("Components") or []:
            if isinstance(component, dict) and component.get("Name") == "Engine":
                details = component.setdefault("Details", {})
                if isinstance(details, dict):
                    details["ApiVersion"] = api
                    details["MinAPIVersion"] = minimum
        return JSONResponse(body)

    async def info(request: Request) -> Response:
        return JSONResponse(await backend.info())

    async def events(request: Request) -> Response:
        now = time.time()
        since = parse_timestamp(request.query_str("since"), "since", now)
        until = parse_timestamp(request.query_str("until"), "until", now)
        if since is not None and until is not None and since > until:
            raise errdefs.InvalidParameter("since time must be before until time")
        items = await backend.events(since=since, until=until, filters=request.filters())
        return StreamResponse(json_stream(items), on_error=in_band_error)

    async def df(request: Request) -> Response:
        return JSONResponse(await backend.df(types=request.query_list("type")))

    return [
        Route("GET", "/_ping", ping),
        Route("HEAD", "/_ping", ping),
        Route("GET", "/version", version),
        Route("GET", "/info", info),
        Route("GET", "/events", events),
        Route("GET", "/system/df", df),
    ]
