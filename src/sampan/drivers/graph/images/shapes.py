"""Docker Engine API shapes built from stored image data: ImageInspect, ImageSummary,
HistoryResponseItem. Pure functions of their inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sampan.types.image import container_config_shape

from . import timestamps
from .reference import Reference

NONE_TAG = "<none>:<none>"
NONE_DIGEST = "<none>@<none>"
MISSING_ID = "<missing>"


@dataclass(frozen=True)
class ImageFacts:
    """Everything the shapes need to know about one image."""

    id: str
    config: dict[str, Any]
    refs: list[Reference]
    parent: str | None
    size: int
    created_ns: int
    last_tag_time: str | None

    @property
    def repo_tags(self) -> list[str]:
        return [ref.familiar() for ref in self.refs if ref.tag is not None and not ref.digest]

    @property
    def repo_digests(self) -> list[str]:
        return [ref.familiar() for ref in self.refs if ref.digest is not None]

    @property
    def labels(self) -> dict[str, str] | None:
        runtime = self.config.get("config") or {}
        labels = runtime.get("Labels")
        return labels if isinstance(labels, dict) else None


def inspect_shape(
    facts: ImageFacts, driver_name: str, driver_data: dict[str, str] | None
) -> dict[str, Any]:
    """Docker's ``ImageInspect``."""
    config = facts.config
    shape: dict[str, Any] = {
        "Id": facts.id,
        "RepoTags": facts.repo_tags,
        "RepoDigests": facts.repo_digests,
        "Parent": facts.parent or "",
        "Comment": config.get("comment") or "",
        "Created": config.get("created") or timestamps.ZERO_TIME,
        "Container": config.get("container") or "",
        "ContainerConfig": container_config_shape(config.get("container_config")),
        "DockerVersion": config.get("docker_version") or "",
        "Author": config.get("author") or "",
        "Config": container_config_shape(config.get("config")),
        "Architecture": config.get("architecture") or "",
        "Os": config.get("os") or "",
        "Size": facts.size,
        "VirtualSize": facts.size,
        "GraphDriver": {"Name": driver_name, "Data": driver_data},
        "RootFS": {"Type": "layers", "Layers": list(config["rootfs"]["diff_ids"])},
        "Metadata": {"LastTagTime": facts.last_tag_time or timestamps.ZERO_TIME},
    }
    if config.get("variant"):
        shape["Variant"] = config["variant"]
    if config.get("os.version"):
        shape["OsVersion"] = config["os.version"]
    return shape


def summary_shape(
    facts: ImageFacts, shared_size: int = -1, containers: int = -1
) -> dict[str, Any]:
    """Docker's ``ImageSummary`` (an untagged image shows ``<none>:<none>``, as Docker does)."""
    tags = facts.repo_tags
    digests = facts.repo_digests
    if not tags and not digests:
        tags, digests = [NONE_TAG], [NONE_DIGEST]
    return {
        "Containers": containers,
        "Created": facts.created_ns // 1_000_000_000,
        "Id": facts.id,
        "Labels": facts.labels,
        "ParentId": facts.parent or "",
        "RepoDigests": digests,
        "RepoTags": tags,
        "SharedSize": shared_size,
        "Size": facts.size,
        "VirtualSize": facts.size,
    }


def history_shape(chain: list[ImageFacts], layer_sizes: list[int]) -> list[dict[str, Any]]:
    """``docker history``: newest first; ``chain`` is the image and then its parents.

    ``layer_sizes`` are the sizes of the image's layers bottom to top; history entries that
    are not ``empty_layer`` consume them in order. The first N entries (N = the length of the
    parent chain) carry the ID and tags of the image they belong to, the rest ``<missing>``.
    """
    image = chain[0]
    entries: list[dict[str, Any]] = []
    sizes = iter(layer_sizes)
    for item in image.config.get("history") or []:
        if not isinstance(item, dict):
            continue
        size = 0 if item.get("empty_layer") else next(sizes, 0)
        created = timestamps.parse_ns(item.get("created"))
        entries.insert(
            0,
            {
                "Id": MISSING_ID,
                "Created": (created or 0) // 1_000_000_000,
                "CreatedBy": item.get("created_by") or "",
                "Tags": None,
                "Size": size,
                "Comment": item.get("comment") or "",
            },
        )
    for entry, owner in zip(entries, chain, strict=False):
        entry["Id"] = owner.id
        entry["Tags"] = owner.repo_tags or None
    return entries
