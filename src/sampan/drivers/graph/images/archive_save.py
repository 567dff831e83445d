"""Writing docker-archives the way Docker 25+ does, as a stream.

Layout written (tar, entries in this order)::

    blobs/sha256/<diff_id hex>     each layer once, uncompressed (media type ...layer.v1.tar)
    blobs/sha256/<config hex>      each image's config, byte for byte (its digest = image ID)
    blobs/sha256/<manifest hex>    an OCI image manifest per image
    index.json                     OCI index: one descriptor per (image, tag), annotated with
                                   io.containerd.image.name and org.opencontainers.image.ref.name
    manifest.json                  [{"Config": "blobs/sha256/..", "RepoTags": [..], "Layers": [..]}]
    oci-layout                     {"imageLayoutVersion": "1.0.0"}
    repositories                   {"busybox": {"latest": "<top layer diff_id hex>"}}

So it is at once a docker-archive (Docker < 25, skopeo ``docker-archive:``) and an OCI image
layout (Docker 25+ with the containerd store, skopeo ``oci-archive:``). The stream is
produced lazily: layers are read from the layer store while the consumer reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from sampan import errdefs
from sampan.types import image as oci

from .reference import Reference

_BLOCK = 512
_CHUNK = 1 << 20


@dataclass
class SaveItem:
    image_id: str
    config_bytes: bytes
    diff_ids: list[str]
    chain_ids: list[str]
    refs: list[Reference] = field(default_factory=list)


class ChunkStream(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(view), len(self._buffer))
        view[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def _header(name: str, size: int, is_dir: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    remainder = size % _BLOCK
    return b"\0" * (_BLOCK - remainder) if remainder else b""


def _file_entry(name: str, data: bytes) -> Iterator[bytes]:
    yield _header(name, len(data))
    yield data
    yield _padding(len(data))


def _sized(stream: BinaryIO, spool_dir: str) -> tuple[BinaryIO, int]:
    """The stream and its length; a stream without a file behind it is spooled first."""
    try:
        fileno = stream.fileno()
        info = os.fstat(fileno)
        if info.st_mode & 0o170000 == 0o100000:
            return stream, info.st_size - stream.tell()
    except (OSError, io.UnsupportedOperation, AttributeError):
        pass
    spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - returned to the caller
    size = 0
    while chunk := stream.read(_CHUNK):
        spool.write(chunk)
        size += len(chunk)
    stream.close()
    spool.seek(0)
    return cast(BinaryIO, spool), size


def write_archive(
    items: list[SaveItem], open_layer: Callable[[str], BinaryIO], spool_dir: str
) -> Iterator[bytes]:
    """Chunks of the docker-archive holding ``items``; ``open_layer(chain_id)`` -> layer tar."""
    yield _header("blobs/", 0, is_dir=True)
    yield _header("blobs/sha256/", 0, is_dir=True)
    layer_sizes: dict[str, int] = {}
    for item in items:
        for diff_id, chain_id in zip(item.diff_ids, item.chain_ids, strict=True):
            if diff_id in layer_sizes:
                continue
            stream, size = _sized(open_layer(chain_id), spool_dir)
            layer_sizes[diff_id] = size
            with stream:
                yield from _layer_entry(diff_id, stream, size)
    manifests = []
    written_blobs: set[str] = set()
    for item in items:
        config_digest = item.image_id
        if config_digest not in written_blobs:
            written_blobs.add(config_digest)
            yield from _file_entry(_blob_path(config_digest), item.config_bytes)
        manifest = _manifest(item, layer_sizes)
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        if manifest_digest not in written_blobs:
            written_blobs.add(manifest_digest)
            yield from _file_entry(_blob_path(manifest_digest), manifest_bytes)
        manifests.append((item, manifest_digest, len(manifest_bytes)))
    yield from _file_entry("index.json", _index(manifests))
    yield from _file_entry("manifest.json", _docker_manifest(items))
    layout = json.dumps({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}).encode()
    yield from _file_entry(oci.OCI_LAYOUT_FILE, layout)
    yield from _file_entry("repositories", _repositories(items))
    yield b"\0" * (2 * _BLOCK)


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.partition(":")[2]


def _layer_entry(diff_id: str, stream: BinaryIO, size: int) -> Iterator[bytes]:
    yield _header(_blob_path(diff_id), size)
    digest = hashlib.sha256()
    remaining = size
    while remaining:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            raise errdefs.System(f"layer {diff_id} ended early while saving")
        digest.update(chunk)
        remaining -= len(chunk)
        yield chunk
    if "sha256:" + digest.hexdigest() != diff_id:
        raise errdefs.System(f"layer {diff_id} does not match its diff_id; the store is damaged")
    yield _padding(size)


def _manifest(item: SaveItem, layer_sizes: dict[str, int]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {
            "mediaType": oci.OCI_CONFIG,
            "digest": item.image_id,
            "size": len(item.config_bytes),
        },
        "layers": [
            {"mediaType": oci.OCI_LAYER_TAR, "digest": diff_id, "size": layer_sizes[diff_id]}
            for diff_id in item.diff_ids
        ],
    }


def _index(manifests: list[tuple[SaveItem, str, int]]) -> bytes:
    descriptors: list[dict[str, Any]] = []
    for item, digest, size in manifests:
        base = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size}
        tagged = [ref for ref in item.refs if ref.tag is not None]
        if not tagged:
            descriptors.append(base)
        for ref in tagged:
            annotations = {
                oci.ANNOTATION_CONTAINERD_NAME: str(ref),
                oci.ANNOTATION_REF_NAME: ref.tag or "",
            }
            descriptors.append({**base, "annotations": annotations})
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": descriptors}
    return json.dumps(index, separators=(",", ":")).encode()


def _docker_manifest(items: list[SaveItem]) -> bytes:
    entries = []
    for item in items:
        tags = [ref.familiar() for ref in item.refs if ref.tag is not None]
        entries.append(
            {
                "Config": _blob_path(item.image_id),
                "RepoTags": tags or None,
                "Layers": [_blob_path(diff_id) for diff_id in item.diff_ids],
            }
        )
    return json.dumps(entries, separators=(",", ":")).encode()


def _repositories(items: list[SaveItem]) -> bytes:
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        if not item.diff_ids:
            continue
        top = item.diff_ids[-1].partition(":")[2]
        for ref in item.refs:
            if ref.tag is not None:
                repositories.setdefault(ref.familiar_name, {})[ref.tag] = top
    return json.dumps(repositories, separators=(",", ":")).encode()
