"""``ImageService``: the Engine API's image operations over ``ImageStore`` (blocking calls
run in worker threads), with image events."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO, Protocol, cast

from sampan import errdefs
from sampan.daemon.containers import ContainerService, image_familiar
from sampan.daemon.distribution import DistributionService
from sampan.daemon.events import EventBus

CHUNK = 1 << 16


class _BodyReader(io.RawIOBase):
    """A blocking file over an async request body, read from a worker thread: each read
    asks the event loop for the next chunk."""

    def __init__(self, body: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._body = body
        self._loop = loop
        self._buffer = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        async def pull() -> bytes:
            try:
                return await self._body.__anext__()
            except StopAsyncIteration:
                return b""

        return asyncio.run_coroutine_threadsafe(pull(), self._loop).result()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._buffer and not self._eof:
            chunk = self._next_chunk()
            if not chunk:
                self._eof = True
            self._buffer = chunk
        if not self._buffer:
            return 0
        count = min(len(view), len(self._buffer))
        view[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


class Images(Protocol):
    """The parts of ``ImageStore`` used here."""

    def resolve(self, name: str) -> str: ...
    def inspect(self, name: str) -> dict[str, Any]: ...
    def history(self, name: str) -> list[dict[str, Any]]: ...
    def list(self, filters: Any = None, all: bool = False,
             shared_size: bool = False) -> builtins.list[dict[str, Any]]: ...
    def tag(self, source: str, target: str) -> str: ...
    def remove(self, name: str, force: bool = False, prune_parents: bool = True,
               in_use: Callable[[str], bool] = ...,
               in_use_running: Callable[[str], bool] = ...) -> builtins.list[dict[str, str]]: ...
    def save(self, names: Any) -> BinaryIO: ...
    def load(self, source: Any, progress: Any = None) -> builtins.list[str]: ...
    def import_rootfs(self, stream: Any, ref: str | None = None, changes: Any = (),
                      message: str = "", source_name: str = "-") -> str: ...
    def commit(self, container_id: str, parent_image: str | None,
               container_config: dict[str, Any] | None = None, changes: Any = (),
               author: str = "", comment: str = "", ref: str | None = None) -> str: ...
    def prune(self, all: bool = False, in_use: Callable[[str], bool] = ...,
              filters: Any = None) -> dict[str, Any]: ...
    def disk_usage(self, in_use: Callable[[str], bool] = ...,
                   container_count: Callable[[str], int] | None = None) -> dict[str, Any]: ...


def _not_found(name: str) -> errdefs.NotFound:
    return errdefs.NotFound(f"No such image: {image_familiar(name)}")


class ImageService:
    def __init__(self, *, store: Images, containers: ContainerService,
                 events: EventBus, distribution: DistributionService | None = None) -> None:
        self._store = store
        self._containers = containers
        self._events = events
        self._distribution = distribution

    def _publish(self, action: str, image_id: str, name: str) -> None:
        self._events.publish("image", action, image_id, {"name": name})

    async def _call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except errdefs.NotFound as exc:
            if str(exc).startswith("no such image"):
                raise _not_found(name) from exc
            raise

    async def images_list(self, *, all: bool, filters: dict[str, list[str]], shared_size: bool,
                   digests: bool) -> list[dict[str, Any]]:
        images = await asyncio.to_thread(self._store.list, filters, all, shared_size)
        counts: dict[str, int] = {}
        for container in self._containers.all():
            counts[container.image_id] = counts.get(container.image_id, 0) + 1
        for image in images:
            image["Containers"] = counts.get(image.get("Id", ""), 0)
        return images

    async def image_inspect(self, name: str) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._call(name, self._store.inspect, name))

    async def image_history(self, name: str) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", await self._call(name, self._store.history, name))

    async def image_tag(self, name: str, *, repo: str, tag: str) -> None:
        if not repo:
            raise errdefs.InvalidParameter("repository name must have at least one component")
        target = f"{repo}:{tag}" if tag else repo
        full = await self._call(name, self._store.tag, name, target)
        image_id = await self._call(name, self._store.resolve, name)
        self._publish("tag", image_id, str(full))

    async def image_delete(self, name: str, *, force: bool, noprune: bool) -> list[dict[str, Any]]:
        image_id = await self._call(name, self._store.resolve, name)
        result = await self._call(
            name, self._store.remove, name, force, not noprune,
            self._containers.uses_image, self._containers.runs_image)
        for item in result:
            if "Untagged" in item:
                self._publish("untag", image_id, item["Untagged"])
            elif "Deleted" in item and item["Deleted"] == image_id:
                self._publish("delete", image_id, image_id)
        return cast("list[dict[str, Any]]", result)

    async def images_get(self, names: list[str]) -> AsyncIterator[bytes]:
        if not names:
            raise errdefs.InvalidParameter("no images to save")
        for name in names:
            await self._call(name, self._store.resolve, name)
        stream = await asyncio.to_thread(self._store.save, names)
        for name in names:
            image_id = await self._call(name, self._store.resolve, name)
            self._publish("save", image_id, name)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(stream.read, 1 << 20)
                    if not chunk:
                        return
                    yield chunk
            finally:
                with contextlib.suppress(Exception):
                    stream.close()

        return chunks()

    async def images_load(self, body: AsyncIterator[bytes], *, quiet: bool) -> AsyncIterator[
            dict[str, Any]]:
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def progress(short_id: str, status: str) -> None:
            if status.startswith("Loaded image"):
                message: dict[str, Any] = {"stream": status + "\n"}
            elif quiet:
                return
            else:
                message = {"status": status, "progressDetail": {}, "id": short_id}
            loop.call_soon_threadsafe(messages.put_nowait, message)

        reader = io.BufferedReader(_BodyReader(body, loop), CHUNK)

        async def run() -> list[str]:
            try:
                return await asyncio.to_thread(self._store.load, reader, progress)
            finally:
                messages.put_nowait(None)

        async def stream() -> AsyncIterator[dict[str, Any]]:
            task = loop.create_task(run())
            try:
                while True:
                    message = await messages.get()
                    if message is None:
                        break
                    yield message
                loaded = await task
            finally:
                if not task.done():
                    task.cancel()
            for name in loaded:
                with contextlib.suppress(errdefs.SampanError):
                    image_id = await asyncio.to_thread(self._store.resolve, name)
                    self._publish("load", image_id, name)

        return stream()

    async def image_import(self, body: AsyncIterator[bytes], *, source: str, repo: str,
                           tag: str, message: str, changes: list[str],
                           platform: str) -> AsyncIterator[dict[str, Any]]:
        if source != "-":
            raise errdefs.NotImplementedFeature("importing from a URL is not supported")
        ref = (f"{repo}:{tag}" if tag else repo) if repo else None
        loop = asyncio.get_running_loop()
        reader = io.BufferedReader(_BodyReader(body, loop), CHUNK)

        async def stream() -> AsyncIterator[dict[str, Any]]:
            image_id = await asyncio.to_thread(
                self._store.import_rootfs, reader, ref, changes, message, source)
            self._publish("import", image_id, ref or image_id)
            yield {"status": image_id}

        return stream()

    async def image_commit(self, *, container: str, repo: str, tag: str, comment: str, author: str,
                     pause: bool, changes: list[str], config: dict[str, Any] | None
                     ) -> dict[str, Any]:
        record = self._containers.get(container)
        ref = (f"{repo}:{tag}" if tag else repo) if repo else None
        merged = dict(record.config)
        if config:
            merged.update({k: v for k, v in config.items() if v not in (None, "", [], {})})
        paused_here = False
        if pause and record.state.status == "running":
            with contextlib.suppress(errdefs.SampanError):
                await self._containers.container_pause(record.id)
                paused_here = True
        try:
            image_id = await asyncio.to_thread(
                self._store.commit, record.id, record.image_id or None, merged, changes,
                author, comment, ref)
        finally:
            if paused_here:
                with contextlib.suppress(errdefs.SampanError):
                    await self._containers.container_unpause(record.id)
        self._containers.publish(record, "commit", comment=comment)
        return {"Id": image_id}

    async def images_prune(self, *, filters: dict[str, list[str]]) -> dict[str, Any]:
        result = await asyncio.to_thread(self._store.prune, False, self._containers.uses_image,
                                         filters)
        for item in result.get("ImagesDeleted") or []:
            if "Deleted" in item and item["Deleted"].startswith("sha256:"):
                self._publish("delete", item["Deleted"], item["Deleted"])
        if not result.get("ImagesDeleted"):
            result["ImagesDeleted"] = None
        return result

    async def disk_usage(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for container in self._containers.all():
            counts[container.image_id] = counts.get(container.image_id, 0) + 1
        return await asyncio.to_thread(
            self._store.disk_usage, self._containers.uses_image,
            lambda image_id: counts.get(image_id, 0))

    async def count(self) -> int:
        return len(await asyncio.to_thread(self._store.list, None, False, False))

    # Registry operations live in ``daemon.distribution``.

    def _registry(self) -> DistributionService:
        if self._distribution is None:
            raise errdefs.NotImplementedFeature("this daemon has no registry access")
        return self._distribution

    async def image_pull(self, *, from_image: str, tag: str, platform: str,
                         registry_auth: str | None) -> AsyncIterator[dict[str, Any]]:
        return await self._registry().image_pull(
            from_image=from_image, tag=tag, platform=platform, registry_auth=registry_auth)

    async def image_push(self, name: str, *, tag: str,
                         registry_auth: str | None) -> AsyncIterator[dict[str, Any]]:
        return await self._registry().image_push(name, tag=tag, registry_auth=registry_auth)

    async def registry_login(self, body: Any) -> dict[str, Any]:
        return await self._registry().registry_login(body)
