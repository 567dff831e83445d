"""Image endpoints under ``/images`` and ``/commit``.

Changes to ``ImagesBackend`` after the first version: ``image_pull``, ``image_push`` and
``registry_login`` (issue 6, distribution).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from sampan import errdefs
from sampan.api import validate
from sampan.api.http import (
    EmptyResponse,
    JSONResponse,
    Request,
    Response,
    StreamResponse,
    in_band_error,
    json_stream,
)
from sampan.api.routes import Route
from sampan.api.types import JSON, Filters, RequestBody


class ImagesBackend(Protocol):
    """What the images router needs from the daemon (``drivers.graph.images.ImageStore``
    in worker threads). ``name`` arguments are references (``busybox``, ``busybox:1``,
    ``docker.io/library/busybox:latest``, ``localhost:5000/a/b:t``), IDs (``sha256:...``) or
    ID prefixes. An unknown one raises ``errdefs.NotFound("No such image: busybox:latest")``.
    """

    async def images_list(
        self, *, all: bool, filters: Filters, shared_size: bool, digests: bool
    ) -> list[JSON]:
        """Docker's ``ImageSummary`` list. Filter keys: dangling, label, before, since,
        reference, until. Errors: InvalidParameter."""
        ...

    async def image_inspect(self, name: str) -> JSON:
        """Docker's ``ImageInspect``. Errors: NotFound."""
        ...

    async def image_history(self, name: str) -> list[JSON]:
        """``[{"Id", "Created", "CreatedBy", "Tags", "Size", "Comment"}]``, newest first.
        Errors: NotFound."""
        ...

    async def image_tag(self, name: str, *, repo: str, tag: str) -> None:
        """Tag ``name`` as ``repo:tag`` (tag "" means latest). Errors: NotFound,
        InvalidParameter (bad reference)."""
        ...

    async def image_delete(self, name: str, *, force: bool, noprune: bool) -> list[JSON]:
        """``[{"Untagged": ref}, {"Deleted": id}, ...]``. Errors: NotFound, Conflict
        ("conflict: unable to remove repository reference ... container x is using its
        referenced image y" / "image is referenced in multiple repositories")."""
        ...

    async def images_get(self, names: list[str]) -> AsyncIterator[bytes]:
        """``docker save``: a tar (docker-archive + OCI layout) of every named image.
        Errors (before the stream): NotFound, InvalidParameter (no names)."""
        ...

    async def images_load(self, body: RequestBody, *, quiet: bool) -> AsyncIterator[JSON]:
        """``docker load``: read the tar from ``body`` (streamed; any compression) and yield
        JSONMessages: progress (``{"status": ..., "id": ...}``, omitted when ``quiet``) and
        one ``{"stream": "Loaded image: busybox:latest\\n"}`` (or ``"Loaded image ID:
        sha256:...\\n"``) per image. A bad archive raises from the iterator (reported
        in-band) or InvalidParameter before it."""
        ...

    async def image_import(
        self, body: RequestBody, *, source: str, repo: str, tag: str, message: str,
        changes: list[str], platform: str,
    ) -> AsyncIterator[JSON]:
        """``POST /images/create?fromSrc=``: ``source`` is ``-`` (the rootfs tar is ``body``)
        or a URL/path (then ``body`` is empty). Yields ``{"status": "sha256:<id>"}`` at the
        end (what the CLI prints). ``repo`` may be "" (untagged). Errors:
        InvalidParameter (bad reference, bad change), NotImplementedFeature (URL)."""
        ...

    async def image_commit(
        self, *, container: str, repo: str, tag: str, comment: str, author: str, pause: bool,
        changes: list[str], config: JSON | None,
    ) -> JSON:
        """``POST /commit``: returns ``{"Id": "sha256:..."}``. ``config`` is the body (a
        container ``Config`` to merge) or None. Errors: NotFound (container),
        InvalidParameter (bad reference/change), Conflict."""
        ...

    async def images_prune(self, *, filters: Filters) -> JSON:
        """``{"ImagesDeleted": [{"Untagged"|"Deleted": ...}] | None, "SpaceReclaimed": n}``.
        Filter keys: dangling ("true"/"false"), until, label, label!. Errors:
        InvalidParameter."""
        ...

    async def image_pull(
        self, *, from_image: str, tag: str, platform: str, registry_auth: str | None
    ) -> AsyncIterator[JSON]:
        """``POST /images/create?fromImage=&tag=&platform=``: resolve the manifest first
        (NotFound "manifest for x:y not found: ...", Forbidden, Unavailable, InvalidParameter
        come back as statuses), then yield Docker's progress messages. ``registry_auth`` is
        the raw ``X-Registry-Auth`` header."""
        ...

    async def image_push(
        self, name: str, *, tag: str, registry_auth: str | None
    ) -> AsyncIterator[JSON]:
        """``POST /images/{name}/push?tag=``: progress messages, ending with the
        ``<tag>: digest: .. size: ..`` status and ``{"aux": {Tag, Digest, Size}}``. Errors
        after the first message are raised from the iterator (reported in-band)."""
        ...

    async def registry_login(self, body: JSON | None) -> JSON:
        """``POST /auth``: ``{"Status": "Login Succeeded", "IdentityToken": ""}``. Errors:
        Forbidden (bad credentials), Unavailable (registry unreachable)."""
        ...


# ----------------------------------------------------------------------------- handlers


def routes(backend: ImagesBackend) -> list[Route]:
    async def list_(request: Request) -> Response:
        filters = request.filters()
        legacy = request.query_str("filter")  # API < 1.41: ?filter=<reference>
        if legacy:
            filters.setdefault("reference", []).append(legacy)
        return JSONResponse(
            await backend.images_list(
                all=request.query_bool("all"),
                filters=filters,
                shared_size=request.query_bool("shared-size"),
                digests=request.query_bool("digests"),
            )
        )

    async def inspect(request: Request) -> Response:
        return JSONResponse(await backend.image_inspect(request.params["name"]))

    async def history(request: Request) -> Response:
        return JSONResponse(await backend.image_history(request.params["name"]))

    async def tag(request: Request) -> Response:
        repo = request.query_str("repo")
        if not repo:
            raise errdefs.InvalidParameter("repository name must have at least one component")
        await backend.image_tag(request.params["name"], repo=repo, tag=request.query_str("tag"))
        return EmptyResponse(201)

    async def delete(request: Request) -> Response:
        return JSONResponse(
            await backend.image_delete(
                request.params["name"],
                force=request.query_bool("force"),
                noprune=request.query_bool("noprune"),
            )
        )

    async def get_one(request: Request) -> Response:
        chunks = await backend.images_get([request.params["name"]])
        return StreamResponse(chunks, content_type="application/x-tar")

    async def get_many(request: Request) -> Response:
        names = request.query_list("names")
        if not names:
            raise errdefs.InvalidParameter("no images given to save")
        chunks = await backend.images_get(names)
        return StreamResponse(chunks, content_type="application/x-tar")

    async def load(request: Request) -> Response:
        messages = await backend.images_load(
            request.read_body(), quiet=request.query_bool("quiet")
        )
        return StreamResponse(json_stream(messages), on_error=in_band_error)

    async def create(request: Request) -> Response:
        if request.query_str("fromImage"):
            messages = await backend.image_pull(
                from_image=request.query_str("fromImage"),
                tag=request.query_str("tag"),
                platform=request.query_str("platform"),
                registry_auth=request.header("X-Registry-Auth"),
            )
            return StreamResponse(json_stream(messages), on_error=in_band_error)
        source = request.query_str("fromSrc")
        if not source:
            raise errdefs.InvalidParameter("fromImage or fromSrc is required")
        messages = await backend.image_import(
            request.read_body(),
            source=source,
            repo=request.query_str("repo"),
            tag=request.query_str("tag"),
            message=request.query_str("message"),
            changes=request.query_list("changes"),
            platform=request.query_str("platform"),
        )
        return StreamResponse(json_stream(messages), on_error=in_band_error)

    async def commit(request: Request) -> Response:
        container = request.query_str("container")
        if not container:
            raise errdefs.InvalidParameter("container is required")
        config = await request.json_body()
        if config is not None:
            validate.check_members(config, validate.CONFIG, "Config")
        result = await backend.image_commit(
            container=container,
            repo=request.query_str("repo"),
            tag=request.query_str("tag"),
            comment=request.query_str("comment"),
            author=request.query_str("author"),
            pause=request.query_bool("pause", True),
            changes=request.query_list("changes"),
            config=config,
        )
        return JSONResponse(result, status=201)

    async def prune(request: Request) -> Response:
        return JSONResponse(await backend.images_prune(filters=request.filters()))

    async def push(request: Request) -> Response:
        messages = await backend.image_push(
            request.params["name"],
            tag=request.query_str("tag"),
            registry_auth=request.header("X-Registry-Auth"),
        )
        return StreamResponse(json_stream(messages), on_error=in_band_error)

    async def auth(request: Request) -> Response:
        return JSONResponse(await backend.registry_login(await request.json_body()))

    async def search(request: Request) -> Response:
        raise errdefs.NotImplementedFeature(
            "searching registries is not supported by sampan (it has no registry access)"
        )

    return [
        Route("GET", "/images/json", list_),
        Route("POST", "/images/load", load),
        Route("POST", "/images/create", create),
        Route("POST", "/images/prune", prune),
        Route("GET", "/images/get", get_many),
        Route("GET", "/images/search", search),
        Route("POST", "/commit", commit),
        Route("GET", "/images/{name:.*}/json", inspect),
        Route("GET", "/images/{name:.*}/history", history),
        Route("POST", "/images/{name:.*}/tag", tag),
        Route("POST", "/images/{name:.*}/push", push),
        Route("POST", "/auth", auth),
        Route("GET", "/images/{name:.*}/get", get_one),
        Route("DELETE", "/images/{name:.*}", delete),
    ]
