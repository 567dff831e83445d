"""Volume endpoints under ``/volumes``: list, create, inspect, remove, prune, with Docker's
shapes (``CreatedAt`` RFC 3339 without fraction; ``Labels``/``Options`` null when unset).

Changes to ``VolumesBackend`` after the first version: (none yet)
"""

from __future__ import annotations

from typing import Any, Protocol

from sampan import errdefs
from sampan.api.http import EmptyResponse, JSONResponse, Request, Response
from sampan.api.routes import Route
from sampan.api.types import JSON, Filters


class VolumesBackend(Protocol):
    """What the volumes router needs from the daemon."""

    async def volumes_list(self, filters: Filters) -> JSON:
        """``{Volumes, Warnings}``. Filters: dangling (true|false|1|0), name (substring),
        label (``key`` or ``key=value``), driver. Errors: InvalidParameter."""
        ...

    async def volume_create(self, body: dict[str, Any]) -> JSON:
        """``{Name, Driver, DriverOpts, Labels}`` -> the volume (an existing volume of
        that name is returned as it is). Errors: InvalidParameter (name, options),
        NotFound (driver)."""
        ...

    async def volume_inspect(self, name: str) -> JSON:
        """Errors: NotFound (``get NAME: no such volume``)."""
        ...

    async def volume_delete(self, name: str, *, force: bool) -> None:
        """Errors: NotFound (unless ``force``), Conflict (in use: ``remove NAME: volume is
        in use - [ids]``)."""
        ...

    async def volumes_prune(self, filters: Filters) -> JSON:
        """``{VolumesDeleted, SpaceReclaimed}``: unused anonymous volumes (every unused
        volume with ``all=true``), filtered by label / label!."""
        ...


def routes(backend: VolumesBackend) -> list[Route]:
    async def list_(request: Request) -> Response:
        return JSONResponse(await backend.volumes_list(request.filters()))

    async def create(request: Request) -> Response:
        body = await request.json_body() or {}
        return JSONResponse(await backend.volume_create(body), status=201)

    async def inspect(request: Request) -> Response:
        return JSONResponse(await backend.volume_inspect(request.params["name"]))

    async def delete(request: Request) -> Response:
        await backend.volume_delete(request.params["name"], force=request.query_bool("force"))
        return EmptyResponse()

    async def prune(request: Request) -> Response:
        return JSONResponse(await backend.volumes_prune(request.filters()))

    async def update(request: Request) -> Response:
        raise errdefs.Unavailable("volume update is only supported for cluster volumes, and "
                                  "this node is not a swarm manager")

    return [
        Route("GET", "/volumes", list_),
        Route("POST", "/volumes/create", create),
        Route("POST", "/volumes/prune", prune),
        Route("GET", "/volumes/{name}", inspect),
        Route("PUT", "/volumes/{name}", update),
        Route("DELETE", "/volumes/{name}", delete),
    ]
