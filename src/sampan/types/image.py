"""Image JSON shapes: OCI image-spec, Docker image manifest v2 schema 2, docker-archive.

Pure data. Configs and manifests are kept as the parsed JSON ``dict`` (so unknown fields
survive a load/save round trip byte for byte; the stored bytes are what the digests cover);
the ``TypedDict``s document the fields the engine reads.
"""

from __future__ import annotations

from typing import Any, TypedDict

# Media types (OCI image-spec v1.1 and Docker's distribution manifest v2 schema 2).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

# OCI layout annotations.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_VERSION = "1.0.0"


class Platform(TypedDict, total=False):
    architecture: str
    os: str
    variant: str


class Descriptor(TypedDict, total=False):
    mediaType: str
    digest: str
    size: int
    annotations: dict[str, str]
    platform: Platform
    urls: list[str]


class Manifest(TypedDict, total=False):
    schemaVersion: int
    mediaType: str
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str]


class Index(TypedDict, total=False):
    schemaVersion: int
    mediaType: str
    manifests: list[Descriptor]
    annotations: dict[str, str]


class RootFS(TypedDict):
    type: str
    diff_ids: list[str]


class HistoryEntry(TypedDict, total=False):
    created: str
    created_by: str
    author: str
    comment: str
    empty_layer: bool


class ArchiveManifestEntry(TypedDict, total=False):
    """One element of a docker-archive's ``manifest.json``."""

    Config: str
    RepoTags: list[str] | None
    Layers: list[str]
    Parent: str
    LayerSources: dict[str, Descriptor]


# The fields Docker's ``container.Config`` shows in ``docker image inspect`` (order kept).
CONTAINER_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}

# The keys ``docker commit --change`` / ``docker import --change`` may set, and the OCI image
# config keys (a subset of Docker's container config) that carry them.
OCI_RUNTIME_CONFIG_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def container_config_shape(config: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's full ``container.Config`` shape: defaults for missing keys, extras kept."""
    shaped = dict(CONTAINER_CONFIG_DEFAULTS)
    if config:
        shaped.update(config)
    return shaped
