"""The Engine API routers: one module per family, each declaring the backend it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampan import errdefs
from sampan.api.http import JSONResponse, Request, Response
from sampan.api.routes import Route

if TYPE_CHECKING:
    from sampan.api.server import Backends

_SWARM_MESSAGE = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
_SWARM_PREFIXES = ("swarm", "nodes", "services", "tasks", "secrets", "configs")


async def _not_swarm(request: Request) -> Response:
    raise errdefs.Unavailable(_SWARM_MESSAGE)


async def _no_plugins(request: Request) -> Response:
    return JSONResponse([])


def build_routes(backends: Backends) -> list[Route]:
    """Every route the server knows, in match order."""
    from sampan.api.routers import archive, containers, exec, images, networks, system, volumes

    table = [
        *system.routes(backends.system),
        *containers.routes(backends.containers),
        *exec.routes(backends.exec),
        *images.routes(backends.images),
        *(networks.routes(backends.networks) if backends.networks is not None else []),
        *(volumes.routes(backends.volumes) if backends.volumes is not None else []),
        *(archive.routes(backends.archive) if backends.archive is not None else []),
        Route("GET", "/plugins", _no_plugins),
    ]
    for prefix in _SWARM_PREFIXES:
        table.append(Route("*", f"/{prefix}", _not_swarm))
        table.append(Route("*", f"/{prefix}/{{rest:.*}}", _not_swarm))
    return table
