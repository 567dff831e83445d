"""Push: an image of the store to a registry repository.

Per layer (five at a time, top layer first, like dockerd), cheapest way first:

1. a blob known to hold the layer (``BlobMap``: pulled or pushed before) is in the target
   repository already: ``HEAD /v2/<repo>/blobs/<digest>`` answers 200 -> "Layer already exists";
2. such a blob is in another repository of the registry: ``POST
   /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>`` answers 201 -> "Mounted from
   <other>" (202 means the registry declined and started an upload, which step 3 uses);
3. upload: the layer's tar (from the layer store) gzip-compressed while it is sent, as a
   chunked upload (``POST`` -> ``PATCH`` with the body streamed, or several ``PATCH``es of
   ``chunk_size`` bytes with ``Content-Range``) -> ``PUT <location>?digest=``.

The config goes up as a monolithic upload (``POST`` -> ``PUT ?digest=`` with the bytes), then
the manifest (Docker v2 schema 2, or OCI when a layer is zstd) with ``PUT
/v2/<repo>/manifests/<tag>``. The stream ends with ``<tag>: digest: <d> size: <n>`` and the
``aux`` message ``{Tag, Digest, Size}``; the image gets the ``repo@digest`` reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from sampan import errdefs
from sampan.drivers.graph.images.reference import Reference, parse_normalized
from sampan.types import image as oci

from . import progress
from .auth import AuthConfig, scope_for
from .blobcache import BlobMap, KnownBlob
from .manifests import sha256_digest
from .pull import first_error
from .session import RegistryClient, Session

log = logging.getLogger("sampan.registry")

_READ = 1 << 20
_DOCKER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


class PushStore(Protocol):
    """What a push needs from the image store and the layer store."""

    def resolve(self, name: str) -> str: ...
    def config_bytes(self, image_id: str) -> bytes: ...
    def chain_ids(self, image_id: str) -> list[str]: ...
    def list(self, filters: Any = None, all: bool = False,
             shared_size: bool = False) -> list[dict[str, Any]]: ...
    def add_repo_digest(self, name_with_digest: str, image_id: str) -> None: ...


class LayerSource(Protocol):
    def diff_tar(self, chain_id: str) -> BinaryIO: ...
    def get(self, chain_id: str) -> Any: ...


@dataclass(frozen=True)
class PushedLayer:
    digest: str
    media_type: str
    size: int


class Pusher:
    def __init__(self, client: RegistryClient, store: PushStore, layers: LayerSource,
                 blob_map: BlobMap, *, concurrency: int = 5, compression_level: int = 1,
                 chunk_size: int = 0) -> None:
        self._client = client
        self._store = store
        self._layers = layers
        self._blob_map = blob_map
        self._concurrency = concurrency
        self._level = compression_level
        self.chunk_size = chunk_size  # 0: one streamed PATCH per blob

    def tags_to_push(self, ref: Reference) -> list[Reference]:
        """``ref`` itself when it has a tag, else every local tag of its repository."""
        missing = errdefs.NotFound(
            f"An image does not exist locally with the tag: {ref.familiar_name}"
        )
        if ref.tag is not None:
            try:
                self._store.resolve(str(ref))
            except errdefs.NotFound:
                raise missing from None
            return [ref]
        found: list[Reference] = []
        for summary in self._store.list({"reference": [ref.familiar_name]}):
            for text in summary.get("RepoTags") or []:
                with contextlib.suppress(errdefs.InvalidParameter):
                    tagged = parse_normalized(text)
                    if tagged.name == ref.name and tagged.tag is not None:
                        found.append(tagged)
        if not found:
            raise missing
        return sorted(found, key=lambda r: r.tag or "")

    async def push(self, ref: Reference, auth: AuthConfig, emit: progress.Emit) -> None:
        emit(progress.status(f"The push refers to repository [{ref.name}]"))
        tags = await asyncio.to_thread(self.tags_to_push, ref)
        mount_sources = self._mount_sources(ref, tags)
        session = await self._client.session(
            ref.domain, ref.path, ("pull", "push"), auth,
            extra_scopes=tuple(scope_for(repo, ("pull",)) for repo in mount_sources),
        )
        for tagged in tags:
            await self._push_tag(session, tagged, emit)

    def _mount_sources(self, ref: Reference, tags: list[Reference]) -> list[str]:
        repositories: set[str] = set()
        for tagged in tags:
            image_id = self._store.resolve(str(tagged))
            config = json.loads(self._store.config_bytes(image_id))
            for diff_id in config["rootfs"]["diff_ids"]:
                for known in self._blob_map.lookup(diff_id, ref.domain):
                    if known.repository != ref.path:
                        repositories.add(known.repository)
        return sorted(repositories)[:8]

    async def _push_tag(self, session: Session, ref: Reference, emit: progress.Emit) -> None:
        image_id = await asyncio.to_thread(self._store.resolve, str(ref))
        config_bytes = await asyncio.to_thread(self._store.config_bytes, image_id)
        config = json.loads(config_bytes)
        diff_ids: list[str] = list(config["rootfs"]["diff_ids"])
        chain_ids = await asyncio.to_thread(self._store.chain_ids, image_id)
        if len(chain_ids) != len(diff_ids):
            raise errdefs.System(f"image {image_id} has {len(chain_ids)} layers stored but "
                                 f"{len(diff_ids)} in its config")
        for diff_id in reversed(diff_ids):
            emit(progress.status("Preparing", progress.short(diff_id)))
        semaphore = asyncio.Semaphore(self._concurrency)
        results: dict[int, PushedLayer] = {}
        pushed_once: dict[str, asyncio.Future[PushedLayer]] = {}

        async def one(index: int) -> None:
            diff_id, chain_id = diff_ids[index], chain_ids[index]
            future = pushed_once.get(diff_id)
            if future is not None:
                results[index] = await asyncio.shield(future)
                return
            future = asyncio.get_running_loop().create_future()
            pushed_once[diff_id] = future
            try:
                results[index] = await self._push_layer(
                    session, ref, diff_id, chain_id, semaphore, emit)
                future.set_result(results[index])
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
                raise

        try:
            async with asyncio.TaskGroup() as group:
                for index in reversed(range(len(diff_ids))):
                    group.create_task(one(index))
        except BaseExceptionGroup as exc:
            raise first_error(exc) from None
        layers = [results[index] for index in range(len(diff_ids))]
        await self._push_config(session, image_id, config_bytes)
        manifest, media_type = manifest_for(
            PushedLayer(image_id, oci.DOCKER_CONFIG, len(config_bytes)), layers)
        digest = await self._put_manifest(session, ref, manifest, media_type)
        tag = ref.tag or "latest"
        emit(progress.status(f"{tag}: digest: {digest} size: {len(manifest)}"))
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}})
        await asyncio.to_thread(self._store.add_repo_digest, f"{ref.name}@{digest}", image_id)

    async def _push_layer(self, session: Session, ref: Reference, diff_id: str, chain_id: str,
                          semaphore: asyncio.Semaphore, emit: progress.Emit) -> PushedLayer:
        short = progress.short(diff_id)
        if semaphore.locked():
            emit(progress.status("Waiting", short))
        async with semaphore:
            upload_location: str | None = None
            checked: set[str] = set()
            for known in self._blob_map.lookup(diff_id, ref.domain)[:6]:
                layer = PushedLayer(known.digest, known.media_type, known.size)
                if known.digest not in checked:
                    checked.add(known.digest)
                    if await self._blob_exists(session, known.digest):
                        emit(progress.status("Layer already exists", short))
                        self._remember(ref, diff_id, layer)
                        return layer
                if known.repository != ref.path:
                    mounted, location = await self._mount(session, known)
                    if mounted:
                        emit(progress.status(f"Mounted from {known.repository}", short))
                        self._remember(ref, diff_id, layer)
                        return layer
                    if location is not None:
                        upload_location = location  # declined: the upload it began is ours
                        break
            layer = await self._upload_layer(session, chain_id, diff_id, upload_location, emit)
            self._remember(ref, diff_id, layer)
            emit(progress.status("Pushed", short))
            return layer

    def _remember(self, ref: Reference, diff_id: str, layer: PushedLayer) -> None:
        self._blob_map.add(diff_id, KnownBlob(layer.digest, layer.media_type, layer.size,
                                              ref.domain, ref.path))

    async def _blob_exists(self, session: Session, digest: str) -> bool:
        response = await session.request("HEAD", f"blobs/{digest}", follow_redirects=True)
        return response.status_code == 200

    async def _mount(self, session: Session, known: KnownBlob) -> tuple[bool, str | None]:
        response = await session.request(
            "POST", "blobs/uploads/", params={"mount": known.digest, "from": known.repository},
            content=b"",
        )
        if response.status_code == 201:
            return True, None
        if response.status_code == 202:
            return False, response.headers.get("location")
        return False, None

    async def _start_upload(self, session: Session) -> str:
        response = await session.request("POST", "blobs/uploads/", content=b"")
        await session.check(response, f"upload to {session.repository}", 202)
        location: str | None = response.headers.get("location")
        if not location:
            raise errdefs.Unavailable(f"registry started an upload to {session.repository} "
                                      "without a Location")
        return location

    async def _upload_layer(self, session: Session, chain_id: str, diff_id: str,
                            location: str | None, emit: progress.Emit) -> PushedLayer:
        short = progress.short(diff_id)
        info = await asyncio.to_thread(self._layers.get, chain_id)
        meter = progress.Meter(emit, "Pushing", short, int(getattr(info, "size", 0)))
        if location is None:
            location = await self._start_upload(session)
        compressed = _GzipStream(lambda: self._layers.diff_tar(chain_id), self._level,
                                 meter.add)
        if self.chunk_size > 0:
            location = await self._patch_chunks(session, location, compressed)
        else:
            response = await session.request(
                "PATCH", location, body=compressed.chunks(),
                headers={"Content-Type": "application/octet-stream"},
            )
            await session.check(response, f"upload of layer {short}", 202)
            location = response.headers.get("location") or location
        meter.finish()
        digest = compressed.digest
        await self._finish_upload(session, location, digest, f"layer {short}")
        return PushedLayer(digest, oci.DOCKER_LAYER_GZIP, compressed.size)

    async def _patch_chunks(self, session: Session, location: str,
                            compressed: _GzipStream) -> str:
        """The spec's chunked upload: ``PATCH`` with ``Content-Range: start-end`` per chunk."""
        offset = 0
        buffer = bytearray()

        async def send(data: bytes) -> None:
            nonlocal location, offset
            end = offset + len(data) - 1
            response = await session.request(
                "PATCH", location, content=data, retry=False,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{offset}-{end}",
                         "Content-Length": str(len(data))},
            )
            await session.check(response, "chunked upload", 202)
            location = response.headers.get("location") or location
            offset = end + 1

        async for piece in compressed.chunks():
            buffer += piece
            while len(buffer) >= self.chunk_size:
                await send(bytes(buffer[: self.chunk_size]))
                del buffer[: self.chunk_size]
        if buffer:
            await send(bytes(buffer))
        return location

    async def _finish_upload(self, session: Session, location: str, digest: str,
                             what: str, content: bytes = b"") -> None:
        url = _with_query(session.url(location), {"digest": digest})
        response = await session.request(
            "PUT", url, content=content,
            headers={"Content-Type": "application/octet-stream"}, retry=False,
        )
        await session.check(response, f"upload of {what}", 201, 204)

    async def _push_config(self, session: Session, image_id: str, config_bytes: bytes) -> None:
        if await self._blob_exists(session, image_id):
            return
        location = await self._start_upload(session)
        await self._finish_upload(session, location, image_id, "image config", config_bytes)

    async def _put_manifest(self, session: Session, ref: Reference, manifest: bytes,
                            media_type: str) -> str:
        response = await session.request(
            "PUT", f"manifests/{ref.tag or 'latest'}", content=manifest,
            headers={"Content-Type": media_type},
        )
        await session.check(response, f"manifest of {ref.familiar()}", 201, 200)
        digest = sha256_digest(manifest)
        answered = response.headers.get("docker-content-digest", "")
        if answered.startswith("sha256:") and answered != digest:
            raise errdefs.Unavailable(
                f"registry stored the manifest of {ref.familiar()} as {answered}, "
                f"not {digest}"
            )
        return digest


def manifest_for(config: PushedLayer, layers: list[PushedLayer]) -> tuple[bytes, str]:
    """Docker v2 schema 2 (dockerd's layout: three-space indent), or OCI for zstd layers."""
    use_oci = any("zstd" in layer.media_type for layer in layers)
    if use_oci:
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": oci.OCI_CONFIG, "size": config.size,
                       "digest": config.digest},
            "layers": [{"mediaType": _oci_type(layer.media_type), "size": layer.size,
                        "digest": layer.digest} for layer in layers],
        }
        return json.dumps(document, indent=3).encode(), oci.OCI_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST,
        "config": {"mediaType": oci.DOCKER_CONFIG, "size": config.size,
                   "digest": config.digest},
        "layers": [{"mediaType": _docker_type(layer.media_type), "size": layer.size,
                    "digest": layer.digest} for layer in layers],
    }
    return json.dumps(document, indent=3).encode(), oci.DOCKER_MANIFEST


def _docker_type(media_type: str) -> str:
    if media_type in (oci.OCI_LAYER_TAR, _DOCKER_TAR):
        return _DOCKER_TAR
    return oci.DOCKER_LAYER_GZIP


def _oci_type(media_type: str) -> str:
    if "zstd" in media_type:
        return oci.OCI_LAYER_ZSTD
    if media_type in (oci.OCI_LAYER_TAR, _DOCKER_TAR):
        return oci.OCI_LAYER_TAR
    return oci.OCI_LAYER_GZIP


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.extend(extra.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class _GzipStream:
    """A layer tar gzip-compressed in a worker thread while the upload sends it; counts the
    tar bytes read (the "Pushing" progress) and hashes the compressed bytes."""

    def __init__(self, open_tar: Callable[[], BinaryIO], level: int,
                 on_read: Callable[[int], None]) -> None:
        self._open = open_tar
        self._level = level
        self._on_read = on_read
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)
        stop = False

        def put(item: bytes | BaseException | None) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        def produce() -> None:
            try:
                compressor = zlib.compressobj(self._level, zlib.DEFLATED, 31)
                with self._open() as tar:
                    while not stop:
                        data = tar.read(_READ)
                        if not data:
                            break
                        self._on_read(len(data))
                        out = compressor.compress(data)
                        if out:
                            put(out)
                put(compressor.flush())
                put(None)
            except BaseException as exc:  # handed to the consumer
                with contextlib.suppress(BaseException):
                    put(exc)

        worker = loop.run_in_executor(None, produce)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                self._hash.update(item)
                self.size += len(item)
                yield item
        finally:
            stop = True
            while not worker.done():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0.01)
