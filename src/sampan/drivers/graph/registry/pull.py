"""Pull: a reference from a registry into the image store.

Two phases, so that errors about the reference come back as HTTP statuses (dockerd resolves
the manifest before it answers, see wire/distribution.md) and the rest as a progress stream:

1. :meth:`Puller.resolve`: ``GET`` the manifest (an index or list is resolved to the
   platform's manifest), then the config; every document is checked against its digest.
2. :meth:`Puller.pull`: layers whose chain the layer store has are reused ("Already
   exists"); the others download concurrently (three at a time, like dockerd) into the blob
   cache, while one worker thread unpacks them bottom-up *from the growing files*::

       event loop:  GET blob 1 ──▶ ingest/1 ─┐   GET blob 2 ──▶ ingest/2 ─┐
       thread:      ImageStore.add_image: unpack 1 (follows ingest/1) ──▶ unpack 2 ──▶ publish

   The image appears in one transaction after every layer unpacked and verified (blob digest
   while downloading, diff id while unpacking); any failure rolls the layers back, so an
   interrupted pull leaves no image. Downloaded blobs stay in the cache until a pull of them
   succeeds: the retry reuses them (and resumes a partial one with ``Range``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast

import httpx

from sampan import errdefs
from sampan.drivers.graph.images.archive_load import parse_config
from sampan.drivers.graph.images.reference import Reference
from sampan.drivers.graph.images.store import ExternalLayer, chain_id_of

from . import manifests, progress
from .auth import AuthConfig
from .blobcache import BlobCache, BlobMap, Download, KnownBlob
from .manifests import Descriptor, ImageManifest, ManifestIndex, Platform, sha256_digest
from .session import RegistryClient, Session, describe, registry_error_text

log = logging.getLogger("sampan.registry")

MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20


class PullStore(Protocol):
    """What a pull needs from the image store."""

    def add_image(self, config_bytes: bytes, layers: Sequence[ExternalLayer], *,
                  manifest_bytes: bytes | None = None, tags: Sequence[str] = ()) -> str: ...
    def add_repo_digest(self, name_with_digest: str, image_id: str) -> None: ...
    def resolve(self, name: str) -> str: ...


class LayerIndex(Protocol):
    def exists(self, chain_id: str) -> bool: ...


@dataclass
class PullTarget:
    """A resolved reference: everything known before any layer moves."""

    ref: Reference
    session: Session
    manifest_digest: str
    manifest_bytes: bytes
    manifest: ImageManifest
    config_bytes: bytes
    config: dict[str, Any]

    @property
    def image_id(self) -> str:
        return self.manifest.config.digest

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])


@dataclass
class PullResult:
    image_id: str
    manifest_digest: str
    up_to_date: bool


class Puller:
    def __init__(self, client: RegistryClient, store: PullStore, layers: LayerIndex,
                 cache: BlobCache, blob_map: BlobMap, concurrency: int = 3) -> None:
        self._client = client
        self._store = store
        self._layers = layers
        self._cache = cache
        self._blob_map = blob_map
        self._concurrency = concurrency

    # ------------------------------------------------------------------ phase 1: resolve

    async def resolve(self, ref: Reference, platform: Platform | None,
                      auth: AuthConfig) -> PullTarget:
        """Manifest and config of ``ref`` (a tag or a digest) for ``platform`` (None: host)."""
        session = await self._client.session(ref.domain, ref.path, ("pull",), auth)
        reference = ref.digest or ref.tag or "latest"
        shown = ref.familiar()
        data, content_type, digest = await self._manifest(session, reference, shown)
        parsed = manifests.parse_manifest(data, content_type, shown)
        # The reference's digest is what its tag points at: the index when there is one.
        manifest_digest_for_ref = digest
        if isinstance(parsed, ManifestIndex):
            wanted = platform or manifests.host()
            chosen = manifests.choose(parsed, wanted, shown)
            data, content_type, digest = await self._manifest(session, chosen.digest, shown)
            parsed = manifests.parse_manifest(data, content_type, shown)
            if isinstance(parsed, ManifestIndex):
                raise errdefs.InvalidParameter(f"image index for {shown} names another index")
        config_bytes = await self._small_blob(session, parsed.config, "config", shown)
        config = parse_config(config_bytes, f"config of {shown}")
        if len(config["rootfs"]["diff_ids"]) != len(parsed.layers):
            raise errdefs.InvalidParameter(
                f"manifest of {shown} lists {len(parsed.layers)} layers but its config "
                f"{len(config['rootfs']['diff_ids'])} diff_ids"
            )
        manifests.check_config_platform(config, platform, shown)
        return PullTarget(ref, session, manifest_digest_for_ref, data, parsed,
                          config_bytes, config)

    async def _manifest(self, session: Session, reference: str,
                        shown: str) -> tuple[bytes, str, str]:
        response = await session.request(
            "GET", f"manifests/{reference}", headers={"Accept": ", ".join(manifests.ACCEPT)}
        )
        if response.status_code == 404:
            raise errdefs.NotFound(
                f"manifest for {shown} not found: {registry_error_text(response)}"
            )
        await session.check(response, f"manifest for {shown}", 200)
        data = response.content
        if len(data) > MAX_MANIFEST_BYTES:
            raise errdefs.InvalidParameter(f"manifest for {shown} is too large")
        actual = sha256_digest(data)
        if reference.startswith("sha256:"):
            if actual != reference:
                raise errdefs.InvalidParameter(
                    f"manifest verification failed for digest {reference}: got {actual}"
                )
        else:
            header = response.headers.get("docker-content-digest", "")
            if header.startswith("sha256:") and header != actual:
                raise errdefs.InvalidParameter(
                    f"manifest for {shown}: Docker-Content-Digest {header} does not match "
                    f"the content ({actual})"
                )
        return data, response.headers.get("content-type", ""), actual

    async def _small_blob(self, session: Session, descriptor: Descriptor, what: str,
                          shown: str) -> bytes:
        if descriptor.size > MAX_CONFIG_BYTES:
            raise errdefs.InvalidParameter(f"{what} of {shown} is too large")
        response = await session.request(
            "GET", f"blobs/{descriptor.digest}", follow_redirects=True
        )
        await session.check(response, f"{what} blob {descriptor.digest} of {shown}", 200)
        data = response.content
        if sha256_digest(data) != descriptor.digest:
            raise errdefs.InvalidParameter(
                f"{what} blob of {shown} failed verification: expected {descriptor.digest}, "
                f"got {sha256_digest(data)}"
            )
        return data

    # ------------------------------------------------------------------ phase 2: pull

    def up_to_date(self, target: PullTarget) -> bool:
        if target.ref.tag is None:
            return False
        try:
            return self._store.resolve(str(target.ref)) == target.image_id
        except errdefs.SampanError:
            return False

    async def pull(self, target: PullTarget, emit: progress.Emit) -> PullResult:
        ref = target.ref
        emit({"status": f"Pulling from {ref.path}", "id": ref.digest or ref.tag or "latest"})
        tags = [str(ref)] if ref.tag is not None and ref.digest is None else []
        digest_ref = f"{ref.name}@{target.manifest_digest}"
        if self.up_to_date(target):
            await asyncio.to_thread(self._store.add_repo_digest, digest_ref, target.image_id)
            self._remember(target)
            return PullResult(target.image_id, target.manifest_digest, True)
        jobs = self._plan(target, emit)
        succeeded = False
        try:
            image_id = await self._download_and_unpack(target, jobs, tags, emit)
            succeeded = True
        finally:
            # Blobs of a failed pull stay for the retry; a pull that worked needs them no more.
            for job in jobs:
                if job.download is not None:
                    self._cache.release(job.download, remove=succeeded)
        await asyncio.to_thread(self._store.add_repo_digest, digest_ref, image_id)
        self._remember(target)
        return PullResult(image_id, target.manifest_digest, False)

    def _remember(self, target: PullTarget) -> None:
        for descriptor, diff_id in zip(target.manifest.layers, target.diff_ids, strict=True):
            self._blob_map.add(diff_id, KnownBlob(
                descriptor.digest, descriptor.media_type, descriptor.size,
                target.ref.domain, target.ref.path,
            ))

    def _plan(self, target: PullTarget, emit: progress.Emit) -> list[_Job]:
        jobs: list[_Job] = []
        parent: str | None = None
        present = True
        for descriptor, diff_id in zip(target.manifest.layers, target.diff_ids, strict=True):
            chain = chain_id_of(parent, diff_id)
            parent = chain
            present = present and self._layers.exists(chain)
            job = _Job(descriptor, diff_id, present)
            short = progress.short(descriptor.digest)
            if present:
                emit(progress.status("Already exists", short))
            elif not any(j.descriptor.digest == descriptor.digest for j in jobs):
                emit(progress.status("Pulling fs layer", short))
            jobs.append(job)
        return jobs

    async def _download_and_unpack(self, target: PullTarget, jobs: list[_Job],
                                   tags: list[str], emit: progress.Emit) -> str:
        shared: dict[str, Download] = {}
        to_fetch: list[_Job] = []
        for job in jobs:
            if job.present:
                continue
            if job.descriptor.digest in shared:
                job.download = shared[job.descriptor.digest]
                job.download.users += 1
                continue
            download, owner = self._cache.open(job.descriptor.digest, job.descriptor.size)
            job.download, job.owner = download, owner
            shared[job.descriptor.digest] = download
            to_fetch.append(job)
        layers = [
            ExternalLayer(open=self._opener(job, emit), diff_id=job.diff_id,
                          blob_digest=job.descriptor.digest)
            for job in jobs
        ]
        loop = asyncio.get_running_loop()
        unpack = loop.run_in_executor(None, lambda: self._store.add_image(
            target.config_bytes, layers, manifest_bytes=target.manifest_bytes, tags=tags))
        semaphore = asyncio.Semaphore(self._concurrency)
        fetch_errors: list[BaseException] = []

        async def fetch(job: _Job) -> None:
            try:
                await self._fetch(target.session, job, semaphore, emit)
            except Exception as exc:
                fetch_errors.append(exc)
                raise

        failure: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for job in to_fetch:
                    group.create_task(fetch(job))
                group.create_task(_wait(unpack))
        except BaseException as exc:  # re-raised below, after the cleanup
            # A download's error is the cause; the unpacker only saw its consequence.
            failure = fetch_errors[0] if fetch_errors else first_error(exc)
        if failure is not None:
            for job in to_fetch:
                if job.download is not None:
                    job.download.fail(failure)
            with contextlib.suppress(BaseException):
                await asyncio.wait([unpack])
            raise failure
        image_id: str = unpack.result()
        return image_id

    def _opener(self, job: _Job, emit: progress.Emit) -> Callable[[], BinaryIO]:
        def open_layer() -> BinaryIO:
            if job.download is None:
                raise errdefs.NotFound(f"layer {job.descriptor.digest} was expected locally")
            short = progress.short(job.descriptor.digest)
            meter = progress.Meter(emit, "Extracting", short, job.descriptor.size)
            return cast(BinaryIO, _ExtractingReader(job, job.download.reader(), meter, emit))

        return open_layer

    async def _fetch(self, session: Session, job: _Job, semaphore: asyncio.Semaphore,
                     emit: progress.Emit) -> None:
        download = job.download
        assert download is not None
        short = progress.short(job.descriptor.digest)
        if not job.owner:
            await asyncio.to_thread(download.finished.wait)
            if download.error is not None:
                raise download.error
            emit(progress.status("Download complete", short))
            return
        if download.done:
            emit(progress.status("Download complete", short))
            return
        if semaphore.locked():
            emit(progress.status("Waiting", short))
        async with semaphore:
            try:
                await self._fetch_bytes(session, job, download, emit)
                emit(progress.status("Verifying Checksum", short))
                download.complete()
            except BaseException as exc:
                download.fail(exc)
                raise
        emit(progress.status("Download complete", short))

    async def _fetch_bytes(self, session: Session, job: _Job, download: Download,
                           emit: progress.Emit) -> None:
        digest = job.descriptor.digest
        url = session.url(f"blobs/{digest}")
        meter = progress.Meter(emit, "Downloading", progress.short(digest), download.size)
        meter.current = download.written
        attempts = session.client.retries
        attempt = 0
        while download.written < download.size:
            headers = {"Range": f"bytes={download.written}-"} if download.written else {}
            try:
                response = await session.request(
                    "GET", f"blobs/{digest}", headers=headers, stream=True,
                    follow_redirects=True,
                )
                try:
                    if response.status_code not in (200, 206):
                        await session.check(response, f"blob {digest}", 200, 206)
                    skip = download.written if response.status_code == 200 else 0
                    async for chunk in response.aiter_raw():
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        download.append(chunk)
                        meter.add(len(chunk))
                finally:
                    await response.aclose()
                if download.written < download.size:
                    raise errdefs.Unavailable(
                        f"blob {digest} ended after {download.written} of "
                        f"{download.size} bytes"
                    )
            except (httpx.TransportError, errdefs.Unavailable) as exc:
                if attempt >= attempts:
                    if isinstance(exc, errdefs.Unavailable):
                        raise
                    raise errdefs.Unavailable(describe("GET", url, exc)) from exc
                attempt += 1
                log.debug("resuming blob %s at %d after %r", digest, download.written, exc)
                await asyncio.sleep(session.client.backoff * (2 ** (attempt - 1)))
        meter.finish()


@dataclass
class _Job:
    descriptor: Descriptor
    diff_id: str
    present: bool
    download: Download | None = None
    owner: bool = False


class _ExtractingReader(io.RawIOBase):
    """Counts the compressed bytes the unpacker consumed ("Extracting"); at the end of a
    complete read it says "Pull complete"."""

    def __init__(self, job: _Job, inner: BinaryIO, meter: progress.Meter,
                 emit: progress.Emit) -> None:
        self._job = job
        self._inner = inner
        self._meter = meter
        self._emit = emit
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        if not data:
            self._eof = True
            return 0
        memoryview(buffer).cast("B")[: len(data)] = data
        self._meter.add(len(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
            if self._eof:
                self._meter.finish()
                self._emit(progress.status("Pull complete", progress.short(
                    self._job.descriptor.digest)))
        super().close()


async def _wait(future: asyncio.Future[Any]) -> None:
    await asyncio.shield(future)


def first_error(exc: BaseException) -> BaseException:
    """The first error inside a TaskGroup's exception group (the error itself otherwise)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
