"""Reading image archives: what images an archive holds, before anything is stored.

Three layouts are understood, chosen by the files present:

* **docker-archive** (``docker save``): ``manifest.json`` lists, per image, the config file,
  the layer files in order and ``RepoTags``. Docker before 25 names them
  ``<hex>.json`` and ``<v1 id>/layer.tar``; Docker 25+ (and skopeo) use ``blobs/sha256/<hex>``
  and add ``index.json`` + ``oci-layout``; ``manifest.json`` wins when present.
* **OCI image layout** (directory or tar): ``oci-layout`` + ``index.json`` -> manifests (or
  nested indexes, resolved to the host platform) -> config and layer blobs. A name comes
  from ``io.containerd.image.name`` or a full ``org.opencontainers.image.ref.name``; a bare
  ref name such as ``latest`` cannot name an image and the image loads untagged.

Every JSON document is validated (``errdefs.InvalidParameter`` naming the file); a config's
digest is its image ID and must match the manifest's descriptor.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from typing import Any

from sampan import errdefs
from sampan.types import image as oci

from .archive_source import ArchiveFiles
from .reference import Reference, parse_normalized, parse_tagged


@dataclass(frozen=True)
class LayerSource:
    """Where one layer's bytes are in the archive and what they must hash to."""

    name: str  # file name in the archive
    diff_id: str  # from the config: sha256 of the uncompressed tar
    blob_digest: str | None = None  # descriptor digest of the (compressed) blob, when known
    media_type: str | None = None


@dataclass
class PlannedImage:
    config_bytes: bytes
    config: dict[str, Any]
    layers: list[LayerSource]
    tags: list[Reference] = field(default_factory=list)
    manifest_bytes: bytes | None = None

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config_bytes).hexdigest()


def read_archive(files: ArchiveFiles) -> list[PlannedImage]:
    """Every image described by the archive, in the archive's order."""
    if files.exists("manifest.json"):
        return _read_docker_archive(files)
    if files.exists("index.json") and files.exists(oci.OCI_LAYOUT_FILE):
        return _read_oci_layout(files)
    if files.exists("repositories"):
        raise errdefs.NotImplementedFeature(
            "legacy v1 image archives without manifest.json are not supported"
        )
    raise errdefs.InvalidParameter(
        "not an image archive: no manifest.json (docker-archive) or index.json (OCI layout)"
    )


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errdefs.InvalidParameter(f"invalid JSON in {what}: {exc}") from exc


def parse_config(data: bytes, what: str) -> dict[str, Any]:
    """An image config, checked for the fields the engine relies on."""
    config = parse_json(data, what)
    if not isinstance(config, dict):
        raise errdefs.InvalidParameter(f"{what} is not a JSON object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise errdefs.InvalidParameter(f"{what}: rootfs.type must be \"layers\"")
    diff_ids = rootfs.get("diff_ids")
    if diff_ids is None:
        diff_ids = rootfs["diff_ids"] = []
    if not isinstance(diff_ids, list) or not all(_is_digest(d) for d in diff_ids):
        raise errdefs.InvalidParameter(f"{what}: rootfs.diff_ids must be sha256 digests")
    runtime = config.get("config")
    if runtime is not None and not isinstance(runtime, dict):
        raise errdefs.InvalidParameter(f"{what}: config must be an object")
    history = config.get("history")
    if history is not None and not isinstance(history, list):
        raise errdefs.InvalidParameter(f"{what}: history must be a list")
    return config


def _is_digest(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("sha256:")
        and len(value) == 71
        and all(c in "0123456789abcdef" for c in value[7:])
    )


def _read_docker_archive(files: ArchiveFiles) -> list[PlannedImage]:
    entries = parse_json(files.read_small("manifest.json"), "manifest.json")
    if not isinstance(entries, list):
        raise errdefs.InvalidParameter("manifest.json must be a JSON list")
    images = []
    for number, entry in enumerate(entries):
        what = f"manifest.json entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise errdefs.InvalidParameter(f"{what}: missing Config")
        layer_names = entry.get("Layers") or []
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise errdefs.InvalidParameter(f"{what}: Layers must be a list of file names")
        config_bytes = files.read_small(entry["Config"])
        config = parse_config(config_bytes, entry["Config"])
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(layer_names):
            raise errdefs.InvalidParameter(
                f"{what}: {len(layer_names)} layers but the config lists {len(diff_ids)} diff_ids"
            )
        sources = entry.get("LayerSources") or {}
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            if not files.exists(name):
                if isinstance(sources, dict) and diff_id in sources:
                    raise errdefs.NotImplementedFeature(
                        f"foreign layer {diff_id} is not in the archive and cannot be fetched"
                    )
                raise errdefs.InvalidParameter(f"missing layer file in image archive: {name}")
            layers.append(LayerSource(name=name, diff_id=diff_id))
        tags = []
        for tag in entry.get("RepoTags") or []:
            if not isinstance(tag, str):
                raise errdefs.InvalidParameter(f"{what}: RepoTags must be strings")
            ref = parse_normalized(tag)
            if ref.digest is not None or ref.tag is None:
                raise errdefs.InvalidParameter(f"invalid tag in manifest.json: {tag!r}")
            tags.append(ref)
        images.append(PlannedImage(config_bytes, config, layers, tags))
    return images


def _blob_name(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or not _is_digest(digest):
        raise errdefs.InvalidParameter(f"unsupported or malformed digest: {digest!r}")
    return f"blobs/sha256/{hex_part}"


def _read_verified_blob(files: ArchiveFiles, descriptor: dict[str, Any], what: str) -> bytes:
    digest = descriptor.get("digest")
    if not isinstance(digest, str):
        raise errdefs.InvalidParameter(f"{what}: descriptor without digest")
    name = _blob_name(digest)
    if not files.exists(name):
        raise errdefs.InvalidParameter(f"{what}: missing blob {digest}")
    data = files.read_small(name)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise errdefs.InvalidParameter(f"{what}: digest mismatch for {digest} (got {actual})")
    size = descriptor.get("size")
    if isinstance(size, int) and size != len(data):
        raise errdefs.InvalidParameter(f"{what}: size mismatch for {digest}")
    return data


def host_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )
    return "linux", arch


def _read_oci_layout(files: ArchiveFiles) -> list[PlannedImage]:
    layout = parse_json(files.read_small(oci.OCI_LAYOUT_FILE), oci.OCI_LAYOUT_FILE)
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise errdefs.InvalidParameter("oci-layout has no imageLayoutVersion")
    index = parse_json(files.read_small("index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise errdefs.InvalidParameter("index.json has no manifests list")
    images: dict[str, PlannedImage] = {}
    for descriptor in index["manifests"]:
        if not isinstance(descriptor, dict):
            raise errdefs.InvalidParameter("index.json: manifest descriptor is not an object")
        planned = _image_from_descriptor(files, descriptor, depth=0)
        if planned is None:
            continue
        tag = _name_from_annotations(descriptor.get("annotations") or {})
        existing = images.setdefault(planned.id, planned)
        if tag is not None and tag not in existing.tags:
            existing.tags.append(tag)
    return list(images.values())


def _name_from_annotations(annotations: dict[str, Any]) -> Reference | None:
    for key in (oci.ANNOTATION_CONTAINERD_NAME, oci.ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == oci.ANNOTATION_REF_NAME and ":" not in value and "/" not in value:
            continue  # a bare tag like "latest" names no repository
        try:
            ref = parse_tagged(value)
        except errdefs.InvalidParameter:
            continue
        if ref.digest is None:
            return ref
    return None


def _image_from_descriptor(
    files: ArchiveFiles, descriptor: dict[str, Any], depth: int
) -> PlannedImage | None:
    if depth > 4:
        raise errdefs.InvalidParameter("index.json: image indexes nested too deeply")
    media_type = descriptor.get("mediaType")
    data = _read_verified_blob(files, descriptor, "index.json")
    document = parse_json(data, f"blob {descriptor.get('digest')}")
    if not isinstance(document, dict):
        raise errdefs.InvalidParameter(f"blob {descriptor.get('digest')} is not a JSON object")
    media_type = document.get("mediaType", media_type)
    if media_type in oci.INDEX_MEDIA_TYPES or (
        media_type is None and "manifests" in document
    ):
        chosen = _choose_platform(document.get("manifests") or [])
        if chosen is None:
            raise errdefs.NotFound(
                "no matching manifest for {}/{} in the image index".format(*host_platform())
            )
        return _image_from_descriptor(files, chosen, depth + 1)
    if media_type is not None and media_type not in oci.MANIFEST_MEDIA_TYPES:
        return None  # artifacts, attestations: not images
    config_descriptor = document.get("config")
    if not isinstance(config_descriptor, dict):
        raise errdefs.InvalidParameter(f"manifest {descriptor.get('digest')} has no config")
    config_bytes = _read_verified_blob(files, config_descriptor, "manifest config")
    config = parse_config(config_bytes, f"config {config_descriptor.get('digest')}")
    layer_descriptors = document.get("layers") or []
    diff_ids = config["rootfs"]["diff_ids"]
    if not isinstance(layer_descriptors, list) or len(layer_descriptors) != len(diff_ids):
        raise errdefs.InvalidParameter(
            f"manifest {descriptor.get('digest')}: layers do not match the config's diff_ids"
        )
    layers = []
    for layer, diff_id in zip(layer_descriptors, diff_ids, strict=True):
        if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
            raise errdefs.InvalidParameter("manifest layer descriptor without digest")
        name = _blob_name(layer["digest"])
        if not files.exists(name):
            raise errdefs.InvalidParameter(f"missing layer blob {layer['digest']}")
        layers.append(
            LayerSource(
                name=name,
                diff_id=diff_id,
                blob_digest=layer["digest"],
                media_type=layer.get("mediaType"),
            )
        )
    return PlannedImage(config_bytes, config, layers, [], manifest_bytes=data)


def _choose_platform(manifests: list[Any]) -> dict[str, Any] | None:
    host_os, host_arch = host_platform()
    fallback = None
    for descriptor in manifests:
        if not isinstance(descriptor, dict):
            continue
        wanted = descriptor.get("platform") or {}
        if wanted.get("os") == host_os and wanted.get("architecture") == host_arch:
            return descriptor
        if not wanted and fallback is None:
            fallback = descriptor
    return fallback
