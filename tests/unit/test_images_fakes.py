"""Test doubles and archive builders shared by the image store's unit tests.

``FakeLayers`` keeps layers in memory with the reference rules of G1's ``LayerStore``
(register/retain give the caller a reference, a child holds its parent, release cascades).
The builders write real docker-archives and OCI layouts from small in-memory layers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from sampan import errdefs
from sampan.drivers.graph.content import ContentStore
from sampan.drivers.graph.images import ImageStore, chain_id_of


@dataclass(frozen=True)
class FakeLayer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int


class FakeLayers:
    driver_name = "fake"

    def __init__(self) -> None:
        self.tars: dict[str, bytes] = {}
        self.layers: dict[str, FakeLayer] = {}
        self.refs: dict[str, int] = {}
        self.files_size: dict[str, int] = {}
        self.rw: dict[str, bytes] = {}
        self.unpacked = 0

    def register(
        self, tar: BinaryIO, parent: str | None, expected_diff_id: str | None = None
    ) -> FakeLayer:
        data = tar.read()
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
                files = sum(m.size for m in archive.getmembers() if m.isreg())
        except tarfile.TarError as exc:
            raise errdefs.InvalidParameter(f"invalid layer tar: {exc}") from exc
        diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected_diff_id is not None and diff_id != expected_diff_id:
            raise errdefs.InvalidParameter(f"layer diff id mismatch: {diff_id}")
        if parent is not None and parent not in self.layers:
            raise errdefs.NotFound(f"no such layer: {parent}")
        chain = chain_id_of(parent, diff_id)
        if chain in self.layers:
            return self.retain(chain)
        self.unpacked += 1
        layer = FakeLayer(chain, diff_id, parent, len(data))
        self.layers[chain] = layer
        self.tars[chain] = data
        self.files_size[chain] = files
        self.refs[chain] = 1
        if parent is not None:
            self.refs[parent] += 1
        return layer

    def retain(self, chain_id: str) -> FakeLayer:
        if chain_id not in self.layers:
            raise errdefs.NotFound(f"no such layer: {chain_id}")
        self.refs[chain_id] += 1
        return self.layers[chain_id]

    def get(self, chain_id: str) -> FakeLayer:
        if chain_id not in self.layers:
            raise errdefs.NotFound(f"no such layer: {chain_id}")
        return self.layers[chain_id]

    def exists(self, chain_id: str) -> bool:
        return chain_id in self.layers

    def release(self, chain_id: str) -> list[FakeLayer]:
        removed = []
        current: str | None = chain_id
        while current is not None:
            if current not in self.layers:
                raise errdefs.NotFound(f"no such layer: {current}")
            self.refs[current] -= 1
            if self.refs[current] > 0:
                break
            layer = self.layers.pop(current)
            del self.refs[current], self.tars[current], self.files_size[current]
            removed.append(layer)
            current = layer.parent
        return removed

    def diff_tar(self, chain_id: str) -> BinaryIO:
        return io.BytesIO(self.tars[self.get(chain_id).chain_id])

    def layer_size(self, chain_id: str) -> int:
        self.get(chain_id)
        return self.files_size[chain_id]

    def diff_rw(self, container_id: str) -> BinaryIO:
        if container_id not in self.rw:
            raise errdefs.NotFound(f"no read-write layer for container {container_id}")
        return io.BytesIO(self.rw[container_id])


def make_layer(files: dict[str, bytes | None]) -> bytes:
    """A layer tar: ``path -> content``; ``None`` makes a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.mtime = 1_700_000_000
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_config(
    layers: list[bytes],
    created: str = "2024-01-01T00:00:00Z",
    runtime: dict[str, Any] | None = None,
) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": runtime if runtime is not None else {"Cmd": ["sh"]},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(layers))],
        "rootfs": {"type": "layers", "diff_ids": [digest(layer) for layer in layers]},
    }
    return json.dumps(config, separators=(",", ":")).encode()


@dataclass
class ArchiveImage:
    layers: list[bytes]
    tags: list[str]
    config: bytes = b""

    def __post_init__(self) -> None:
        if not self.config:
            self.config = make_config(self.layers)

    @property
    def id(self) -> str:
        return digest(self.config)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def docker_archive(
    images: list[ArchiveImage], legacy: bool = True, gzip_layers: bool = False
) -> bytes:
    """A ``docker save`` tar. ``legacy``: Docker 20 names (``<hex>.json``, ``<id>/layer.tar``),
    written layers first and ``manifest.json`` last, as Docker does."""
    out = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=out, mode="w") as archive:
        for image in images:
            names = []
            for number, layer in enumerate(image.layers):
                data = gzip.compress(layer) if gzip_layers else layer
                name = (
                    f"{digest(layer)[7:][:60]}{number:04d}/layer.tar"
                    if legacy
                    else f"blobs/sha256/{digest(data)[7:]}"
                )
                if name not in archive.getnames():
                    _add(archive, name, data)
                names.append(name)
            config_name = f"{image.id[7:]}.json" if legacy else f"blobs/sha256/{image.id[7:]}"
            _add(archive, config_name, image.config)
            entries.append({"Config": config_name, "RepoTags": image.tags, "Layers": names})
        _add(archive, "manifest.json", json.dumps(entries).encode())
    return out.getvalue()


def oci_layout(directory: str, images: list[ArchiveImage], compress: str = "gzip") -> None:
    """An OCI image layout directory; each image's tags go in ref.name annotations."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data: bytes) -> str:
        name = digest(data)
        with open(os.path.join(blobs, name[7:]), "wb") as handle:
            handle.write(data)
        return name

    descriptors = []
    for image in images:
        layer_descriptors = []
        for layer in image.layers:
            if compress == "gzip":
                data, media = gzip.compress(layer), "application/vnd.oci.image.layer.v1.tar+gzip"
            elif compress == "zstd":
                import zstandard

                data = zstandard.ZstdCompressor().compress(layer)
                media = "application/vnd.oci.image.layer.v1.tar+zstd"
            else:
                data, media = layer, "application/vnd.oci.image.layer.v1.tar"
            layer_descriptors.append({"mediaType": media, "digest": put(data), "size": len(data)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": put(image.config),
                    "size": len(image.config),
                },
                "layers": layer_descriptors,
            }
        ).encode()
        base = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(manifest),
            "size": len(manifest),
        }
        for tag in image.tags or [None]:
            descriptor = dict(base)
            if tag:
                descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
            descriptors.append(descriptor)
    with open(os.path.join(directory, "index.json"), "w") as handle:
        json.dump({"schemaVersion": 2, "manifests": descriptors}, handle)
    with open(os.path.join(directory, "oci-layout"), "w") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)


def tar_directory(directory: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name in sorted(os.listdir(directory)):
            archive.add(os.path.join(directory, name), arcname=name)
    return out.getvalue()


def new_store(root: str) -> tuple[ImageStore, FakeLayers, ContentStore]:
    layers = FakeLayers()
    content = ContentStore(os.path.join(root, "content"))
    store = ImageStore(os.path.join(root, "images"), layers, content)
    return store, layers, content


def snapshot(store: ImageStore, layers: FakeLayers, content: ContentStore) -> Any:
    """Everything observable about the store, to compare before/after a failed operation."""
    return (
        store.list(all=True),
        sorted(layers.refs.items()),
        content.list(),
        sorted(os.listdir(os.path.join(content.root, "..", "images", "tmp"))),
    )


BASE = make_layer({"bin/": None, "bin/sh": b"#!shell\n" * 10, "etc/passwd": b"root:x:0:0\n"})
APP = make_layer({"app/": None, "app/run": b"run\n" * 100})
OTHER = make_layer({"srv/": None, "srv/data": b"x" * 5000})
