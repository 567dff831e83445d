"""Network endpoints under ``/networks``: list, inspect, create, connect, disconnect, delete,
prune, with Docker's shapes and errors.

Changes to ``NetworksBackend`` after the first version: (none yet)
"""

from __future__ import annotations

from typing import Any, Protocol

from sampan import errdefs
from sampan.api.http import EmptyResponse, JSONResponse, Request, Response
from sampan.api.routes import Route
from sampan.api.types import JSON, Filters


class NetworksBackend(Protocol):
    """What the networks router needs from the daemon."""

    async def networks_list(self, filters: Filters) -> list[JSON]:
        """Docker's ``NetworkResource`` list (``Containers`` empty). Filters: name
        (substring), id (prefix), driver, label, type (builtin|custom), scope, dangling.
        Errors: InvalidParameter (unknown filter)."""
        ...

    async def network_inspect(self, ref: str) -> JSON:
        """One ``NetworkResource`` with its ``Containers``. Errors: NotFound."""
        ...

    async def network_create(self, body: dict[str, Any]) -> JSON:
        """``{Id, Warning}``. Errors: Conflict (name taken), NotFound (driver),
        Forbidden (subnet overlaps), InvalidParameter."""
        ...

    async def network_delete(self, ref: str) -> None:
        """Errors: NotFound, Forbidden (predefined, or containers attached)."""
        ...

    async def networks_prune(self, filters: Filters) -> JSON:
        """``{NetworksDeleted}``: unused user-defined networks removed."""
        ...

    async def network_connect(self, ref: str, container: str,
                              endpoint_config: dict[str, Any]) -> None:
        """Errors: NotFound (network or container), Forbidden (already connected, host or
        container mode), InvalidParameter."""
        ...

    async def network_disconnect(self, ref: str, container: str, force: bool) -> None:
        """Errors: NotFound, Forbidden (not connected)."""
        ...


def routes(backend: NetworksBackend) -> list[Route]:
    async def list_(request: Request) -> Response:
        return JSONResponse(await backend.networks_list(request.filters()))

    async def inspect(request: Request) -> Response:
        return JSONResponse(await backend.network_inspect(request.params["id"]))

    async def create(request: Request) -> Response:
        body = await request.json_body(required=True)
        if not isinstance(body, dict):
            raise errdefs.InvalidParameter("invalid JSON body: expected object")
        return JSONResponse(await backend.network_create(body), status=201)

    async def delete(request: Request) -> Response:
        await backend.network_delete(request.params["id"])
        return EmptyResponse()

    async def prune(request: Request) -> Response:
        return JSONResponse(await backend.networks_prune(request.filters()))

    async def connect(request: Request) -> Response:
        body = await request.json_body(required=True) or {}
        container = str(body.get("Container") or "")
        if not container:
            raise errdefs.InvalidParameter("container is required")
        await backend.network_connect(request.params["id"], container,
                                      dict(body.get("EndpointConfig") or {}))
        return EmptyResponse(status=200)

    async def disconnect(request: Request) -> Response:
        body = await request.json_body(required=True) or {}
        container = str(body.get("Container") or "")
        if not container:
            raise errdefs.InvalidParameter("container is required")
        await backend.network_disconnect(request.params["id"], container,
                                         bool(body.get("Force")))
        return EmptyResponse(status=200)

    return [
        Route("GET", "/networks", list_),
        Route("POST", "/networks/create", create),
        Route("POST", "/networks/prune", prune),
        Route("GET", "/networks/{id}", inspect),
        Route("DELETE", "/networks/{id}", delete),
        Route("POST", "/networks/{id}/connect", connect),
        Route("POST", "/networks/{id}/disconnect", disconnect),
    ]
