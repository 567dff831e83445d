"""``docker cp``: ``HEAD``/``GET``/``PUT /containers/{id}/archive?path=``.

The stat of the path travels in the ``X-Docker-Container-Path-Stat`` header: base64
(standard alphabet) of ``{"name","size","mode","mtime","linkTarget"}`` where ``mode`` is a Go
``os.FileMode`` (``1<<31`` directory, ``1<<27`` symlink, ... | permission bits), not
``st_mode``: the CLI decodes it with Go's meaning. ``GET`` answers a tar
(``application/x-tar``); ``PUT`` takes one (the CLI labels it ``text/plain``) and answers
200 with no body.

Changes to ``ArchiveBackend`` after the first version: (none yet)
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Protocol

from sampan import errdefs
from sampan.api.http import BytesResponse, Request, Response, StreamResponse
from sampan.api.routes import Route
from sampan.api.types import JSON, RequestBody

STAT_HEADER = "X-Docker-Container-Path-Stat"


class ArchiveBackend(Protocol):
    """What the archive router needs from the daemon."""

    async def container_archive_stat(self, id: str, path: str) -> JSON:
        """The path's stat (``name, size, mode, mtime, linkTarget``). Errors: NotFound
        (container, or ``Could not find the file PATH in container ID``)."""
        ...

    async def container_archive_get(self, id: str, path: str
                                    ) -> tuple[JSON, AsyncIterator[bytes]]:
        """The stat and the tar of the path. Errors as for the stat."""
        ...

    async def container_archive_put(self, id: str, path: str, body: RequestBody, *,
                                    no_overwrite_dir_non_dir: bool,
                                    copy_uid_gid: bool) -> None:
        """Extract the tar ``body`` into the directory ``path``. Errors: NotFound,
        InvalidParameter (not a directory, bad tar, dir/non-dir overwrite), Forbidden
        (read-only rootfs or volume)."""
        ...


def stat_header(stat: JSON) -> tuple[str, str]:
    raw = json.dumps(stat, separators=(",", ":")).encode()
    return STAT_HEADER, base64.standard_b64encode(raw).decode("ascii")


def routes(backend: ArchiveBackend) -> list[Route]:
    def path_of(request: Request) -> str:
        path = request.query_str("path")
        if not path:
            raise errdefs.InvalidParameter("path is required")
        return path

    async def head(request: Request) -> Response:
        stat = await backend.container_archive_stat(request.params["id"], path_of(request))
        return BytesResponse(b"", content_type="application/x-tar",
                             headers=[stat_header(stat)])

    async def get(request: Request) -> Response:
        stat, chunks = await backend.container_archive_get(request.params["id"],
                                                           path_of(request))
        return StreamResponse(chunks, content_type="application/x-tar",
                              headers=[stat_header(stat)])

    async def put(request: Request) -> Response:
        await backend.container_archive_put(
            request.params["id"], path_of(request), request.read_body(),
            no_overwrite_dir_non_dir=request.query_bool("noOverwriteDirNonDir"),
            copy_uid_gid=request.query_bool("copyUIDGID"))
        return BytesResponse(b"", content_type="text/plain; charset=utf-8")

    return [
        Route("HEAD", "/containers/{id}/archive", head),
        Route("GET", "/containers/{id}/archive", get),
        Route("PUT", "/containers/{id}/archive", put),
    ]
