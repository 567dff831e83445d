"""``DistributionService``: pull, push and login for the Engine API, with image events.

The registry client (``drivers.graph.registry``, which imports ``httpx``) is built on the
first call, so a daemon that never talks to a registry never loads it. Progress messages come
from the event loop (downloads) and from a worker thread (unpacking); both go through one
queue to the response stream, in the order they were emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sampan import errdefs
from sampan.daemon.events import EventBus
from sampan.drivers.graph.images.reference import Reference, parse_normalized

if TYPE_CHECKING:
    from sampan.drivers.graph.registry.distribution import Distribution
    from sampan.drivers.graph.registry.progress import Message

log = logging.getLogger("sampand.distribution")


def pull_reference(from_image: str, tag: str) -> Reference:
    """``fromImage`` + ``tag`` as Docker combines them (``tag`` may be a digest)."""
    if not from_image:
        raise errdefs.InvalidParameter("fromImage is required")
    ref = parse_normalized(from_image)
    if tag:
        if ref.tag is not None or ref.digest is not None:
            raise errdefs.InvalidParameter(
                f"invalid reference format: {from_image} already names a tag or digest"
            )
        if tag.startswith("sha256:"):
            ref = parse_normalized(f"{from_image}@{tag}")
        else:
            ref = parse_normalized(f"{from_image}:{tag}")
    return ref.with_default_tag()


class DistributionService:
    def __init__(self, *, images: Any, layers: Any, events: EventBus, root: str,
                 insecure_registries: Sequence[str] = (),
                 certs_dir: str = "/etc/sampan/certs.d") -> None:
        self._images = images
        self._layers = layers
        self._events = events
        self._root = root
        self._insecure = list(insecure_registries)
        self._certs_dir = certs_dir
        self._distribution: Distribution | None = None

    def _client(self) -> Distribution:
        if self._distribution is None:
            from sampan.drivers.graph.registry.distribution import (
                Distribution,
                DistributionConfig,
            )

            config = DistributionConfig(root=self._root, insecure_registries=self._insecure,
                                        certs_dir=self._certs_dir)
            self._distribution = Distribution(config, self._images, self._images,
                                              self._layers, self._layers)
        return self._distribution

    async def close(self) -> None:
        if self._distribution is not None:
            await self._distribution.close()

    @staticmethod
    def _auth(registry_auth: str | None) -> Any:
        from sampan.drivers.graph.registry.auth import decode_registry_auth

        return decode_registry_auth(registry_auth)

    async def image_pull(self, *, from_image: str, tag: str, platform: str,
                         registry_auth: str | None) -> AsyncIterator[dict[str, Any]]:
        """Resolve now (errors become the HTTP status), then stream the pull's progress."""
        from sampan.drivers.graph.registry.manifests import parse_platform

        ref = pull_reference(from_image, tag)
        wanted = parse_platform(platform) if platform else None
        distribution = self._client()
        target = await distribution.resolve(ref, wanted, self._auth(registry_auth))

        async def work(emit: Callable[[Message], None]) -> None:
            result = await distribution.pull(target, emit)
            emit({"status": f"Digest: {result.manifest_digest}"})
            verb = "Image is up to date for" if result.up_to_date else (
                "Downloaded newer image for")
            emit({"status": f"Status: {verb} {ref.familiar()}"})
            self._events.publish("image", "pull", ref.familiar(), {"name": ref.familiar()})

        return _stream(work)

    async def image_push(self, name: str, *, tag: str,
                         registry_auth: str | None) -> AsyncIterator[dict[str, Any]]:
        ref = parse_normalized(name)
        if tag:
            if ref.tag is not None or ref.digest is not None:
                raise errdefs.InvalidParameter(f"invalid reference format: {name}:{tag}")
            ref = parse_normalized(f"{name}:{tag}")
        if ref.digest is not None:
            raise errdefs.InvalidParameter("cannot push a digest reference")
        distribution = self._client()
        auth = self._auth(registry_auth)

        async def work(emit: Callable[[Message], None]) -> None:
            await distribution.push(ref, auth, emit)
            self._events.publish("image", "push", ref.familiar(), {"name": ref.familiar()})

        return _stream(work)

    async def registry_login(self, body: Any) -> dict[str, Any]:
        from sampan.drivers.graph.registry.auth import auth_config_from_json

        auth = auth_config_from_json(body)
        result = await self._client().login(auth)
        return {"Status": result.status, "IdentityToken": result.identity_token}


def _stream(work: Callable[[Callable[[Message], None]], Awaitable[None]]
            ) -> AsyncIterator[dict[str, Any]]:
    """Run ``work(emit)`` and yield what it emits (from any thread) until it ends; its
    error is raised from the iterator (the router reports it in-band)."""

    async def messages() -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def emit(message: Message) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, message)

        async def run() -> None:
            try:
                await work(emit)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        task = loop.create_task(run())
        try:
            while True:
                message = await queue.get()
                if message is None:
                    break
                yield message
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return messages()
