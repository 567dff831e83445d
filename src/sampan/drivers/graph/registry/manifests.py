"""Manifests as registries serve them: parsing, checking, and choosing a platform.

Four kinds are understood (``mediaType`` of the document, else the ``Content-Type`` of the
response): Docker's image manifest v2 schema 2 and its manifest list, the OCI image manifest
and the OCI image index. Schema 1 (``application/vnd.docker.distribution.manifest.v1+json``
and ``+prettyjws``) is refused, as by Docker 28. An index or list is resolved to one manifest
by platform: ``os`` and ``architecture`` must match, ``variant`` must match when asked for
(``arm64`` defaults to ``v8``, ``arm`` to ``v7`` like containerd's platform matcher), and an
entry without a platform is never chosen (attestations, artifacts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sampan import errdefs
from sampan.types import image as oci

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# What a pull asks for, best first (Docker sends these six).
ACCEPT = (
    oci.OCI_INDEX,
    oci.DOCKER_MANIFEST_LIST,
    oci.OCI_MANIFEST,
    oci.DOCKER_MANIFEST,
    SCHEMA1_SIGNED,
    "application/json",
)

_LAYER_TYPES = frozenset({
    oci.OCI_LAYER_TAR,
    oci.OCI_LAYER_GZIP,
    oci.OCI_LAYER_ZSTD,
    oci.OCI_LAYER_NONDIST_TAR,
    oci.OCI_LAYER_NONDIST_GZIP,
    oci.DOCKER_LAYER_GZIP,
    oci.DOCKER_LAYER_FOREIGN,
    "application/vnd.docker.image.rootfs.diff.tar",
})


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386",
}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def parse_platform(text: str) -> Platform:
    """``linux``, ``linux/amd64``, ``linux/arm64/v8``, ``amd64`` (os then defaults to linux)."""
    from sampan.drivers.graph.images.archive_load import host_platform

    host_os, host_arch = host_platform()
    parts = [part.strip().lower() for part in text.split("/")] if text else []
    if not parts or len(parts) > 3 or not all(parts):
        if not parts:
            return Platform(host_os, host_arch)
        raise errdefs.InvalidParameter(f"invalid platform {text!r}: want os[/arch[/variant]]")
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            return Platform(parts[0], host_arch)
        return Platform("linux", _ARCH_ALIASES.get(parts[0], parts[0]))
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(parts[0], arch, variant)


def host() -> Platform:
    return parse_platform("")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageManifest:
    """An image manifest (Docker v2 schema 2 or OCI), checked."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class IndexEntry:
    descriptor: Descriptor
    platform: Platform | None


@dataclass(frozen=True)
class ManifestIndex:
    """A Docker manifest list or an OCI image index."""

    media_type: str
    manifests: tuple[IndexEntry, ...]


Parsed = ImageManifest | ManifestIndex


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise errdefs.InvalidParameter(f"{what}: descriptor is not an object")
    digest, size = value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise errdefs.InvalidParameter(f"{what}: unsupported or malformed digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise errdefs.InvalidParameter(f"{what}: descriptor {digest} has no valid size")
    media_type = value.get("mediaType")
    urls = value.get("urls") or ()
    return Descriptor(
        media_type if isinstance(media_type, str) else "",
        digest,
        size,
        tuple(u for u in urls if isinstance(u, str)),
    )


def parse_manifest(data: bytes, content_type: str, name: str) -> Parsed:
    """Parse what ``GET /v2/<name>/manifests/<ref>`` returned; ``name`` is for messages."""
    content_type = content_type.split(";", 1)[0].strip()
    if content_type in (SCHEMA1, SCHEMA1_SIGNED):
        raise schema1_refused(name)
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errdefs.InvalidParameter(f"manifest for {name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise errdefs.InvalidParameter(f"manifest for {name} is not a JSON object")
    if document.get("schemaVersion") == 1:
        raise schema1_refused(name)
    media_type = document.get("mediaType") or content_type
    if media_type in oci.INDEX_MEDIA_TYPES or (
        media_type in ("", "application/json") and "manifests" in document
    ):
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise errdefs.InvalidParameter(f"image index for {name} has no manifests list")
        parsed = []
        for entry in entries:
            descriptor = _descriptor(entry, f"image index for {name}")
            platform = entry.get("platform")
            found = None
            if isinstance(platform, dict) and platform.get("os") and platform.get("architecture"):
                found = Platform(
                    str(platform["os"]),
                    str(platform["architecture"]),
                    str(platform.get("variant") or ""),
                )
            parsed.append(IndexEntry(descriptor, found))
        return ManifestIndex(media_type or oci.OCI_INDEX, tuple(parsed))
    if media_type not in oci.MANIFEST_MEDIA_TYPES and not (
        media_type in ("", "application/json") and "config" in document
    ):
        raise errdefs.InvalidParameter(
            f"manifest for {name} has unsupported media type {media_type!r}"
        )
    config = _descriptor(document.get("config"), f"manifest for {name}")
    layers_value = document.get("layers")
    if not isinstance(layers_value, list):
        raise errdefs.InvalidParameter(f"manifest for {name} has no layers list")
    layers = tuple(_descriptor(item, f"manifest for {name}") for item in layers_value)
    for layer in layers:
        if layer.media_type and layer.media_type not in _LAYER_TYPES:
            raise errdefs.InvalidParameter(
                f"manifest for {name}: layer {layer.digest} has unsupported media type "
                f"{layer.media_type!r}"
            )
    return ImageManifest(media_type or oci.OCI_MANIFEST, config, layers)


def schema1_refused(name: str) -> errdefs.NotImplementedFeature:
    return errdefs.NotImplementedFeature(
        f"image manifest version 2, schema 1 of {name} is not supported (removed in Docker"
        " 28 too): ask its author to push it as Docker manifest v2 schema 2 or OCI"
    )


def _variant_of(platform: Platform) -> str:
    return platform.variant or _DEFAULT_VARIANT.get(platform.architecture, "")


def matches(candidate: Platform, wanted: Platform) -> bool:
    if candidate.os != wanted.os or candidate.architecture != wanted.architecture:
        return False
    if not wanted.variant:
        return True
    return _variant_of(candidate) == _variant_of(wanted)


def choose(index: ManifestIndex, wanted: Platform, name: str) -> Descriptor:
    """The manifest of ``index`` for ``wanted``; ``NotFound`` like Docker's message."""
    candidates = [
        entry for entry in index.manifests
        if entry.platform is not None and matches(entry.platform, wanted)
    ]
    if not wanted.variant and len(candidates) > 1:
        # Prefer the platform's default variant (arm64/v8), then no variant at all.
        default = _DEFAULT_VARIANT.get(wanted.architecture, "")
        candidates.sort(key=lambda e: (e.platform is None or _variant_of(e.platform) != default))
    if not candidates:
        raise errdefs.NotFound(
            f"no matching manifest for {wanted} in the manifest list entries of {name}"
        )
    return candidates[0].descriptor


def check_config_platform(config: dict[str, Any], wanted: Platform | None, name: str) -> None:
    """A single-platform image must be for the platform asked for (when one was)."""
    if wanted is None:
        return
    found = Platform(
        str(config.get("os") or ""),
        str(config.get("architecture") or ""),
        str(config.get("variant") or ""),
    )
    if found.os and found.architecture and not matches(found, wanted):
        raise errdefs.NotFound(
            f"image with reference {name} was found but does not match the specified "
            f"platform: wanted {wanted}, actual: {found}"
        )
