"""``Distribution``: the registry client the daemon holds (one per daemon).

It owns the connection pools and tokens (``RegistryClient``), the blob cache and the blob
map under ``<root>``, and answers the three Engine API verbs: pull (in two phases, see
``pull``), push and login.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from sampan.drivers.graph.images.reference import Reference

from . import progress
from .auth import AuthConfig
from .blobcache import BlobCache, BlobMap
from .hosts import RegistryHosts
from .login import LoginResult, login
from .manifests import Platform
from .pull import LayerIndex, Puller, PullResult, PullStore, PullTarget
from .push import LayerSource, Pusher, PushStore
from .session import RegistryClient


@dataclass(frozen=True)
class DistributionConfig:
    root: str
    insecure_registries: Sequence[str] = ()
    certs_dir: str = "/etc/sampan/certs.d"
    retries: int = 3
    backoff: float = 0.25
    pull_concurrency: int = 3
    push_concurrency: int = 5
    push_chunk_size: int = 0


class Distribution:
    def __init__(self, config: DistributionConfig, images: PullStore, push_images: PushStore,
                 layers: LayerIndex, layer_source: LayerSource) -> None:
        os.makedirs(config.root, mode=0o700, exist_ok=True)
        hosts = RegistryHosts(list(config.insecure_registries), config.certs_dir)
        self.client = RegistryClient(hosts, retries=config.retries, backoff=config.backoff)
        self.cache = BlobCache(os.path.join(config.root, "cache"))
        self.blob_map = BlobMap(os.path.join(config.root, "blobs.db"))
        self.puller = Puller(self.client, images, layers, self.cache, self.blob_map,
                             concurrency=config.pull_concurrency)
        self.pusher = Pusher(self.client, push_images, layer_source, self.blob_map,
                             concurrency=config.push_concurrency,
                             chunk_size=config.push_chunk_size)

    async def resolve(self, ref: Reference, platform: Platform | None,
                      auth: AuthConfig) -> PullTarget:
        return await self.puller.resolve(ref, platform, auth)

    async def pull(self, target: PullTarget, emit: progress.Emit) -> PullResult:
        return await self.puller.pull(target, emit)

    async def push(self, ref: Reference, auth: AuthConfig, emit: progress.Emit) -> None:
        await self.pusher.push(ref, auth, emit)

    async def login(self, auth: AuthConfig) -> LoginResult:
        return await login(self.client, auth)

    async def close(self) -> None:
        await self.client.close()
        self.blob_map.close()
