"""Rows of ``ps`` and ``images`` as Docker's formatter contexts present them to templates.

Field names, titles and renderings follow the docker CLI (``{{.ID}}`` is 12 hex digits
unless ``--no-trunc``, ``{{.Command}}`` is quoted and cut to 20 characters, sizes and ages
come from go-units) so that scripts written for docker read the same text.
"""

from __future__ import annotations

import time
from typing import Any

from sampan.cli.units import ellipsis, go_quote, human_duration, human_size

CONTAINER_TABLE = ("table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t"
                   "{{.Status}}\\t{{.Ports}}\\t{{.Names}}")
CONTAINER_TITLES = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
    "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL",
    "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
IMAGE_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
IMAGE_TABLE_DIGESTS = ("table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t"
                       "{{.CreatedSince}}\\t{{.Size}}")
IMAGE_TITLES = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "SIZE",
}


def short_id(identifier: str) -> str:
    """``stringid.TruncateID``: drop an ``algo:`` prefix, keep 12 characters."""
    if ":" in identifier:
        identifier = identifier.split(":", 1)[1]
    return identifier[:12]


def go_time(timestamp: float) -> str:
    """``time.Unix(t, 0).String()`` in local time: ``2024-05-01 10:00:00 +0000 UTC``."""
    local = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def display_ports(ports: list[dict[str, Any]] | None) -> str:
    """``DisplayablePorts`` (without its range folding): ``0.0.0.0:8080->80/tcp, 53/udp``."""
    shown: list[str] = []
    for port in sorted(ports or [], key=lambda p: (p.get("Type", ""), p.get("PrivatePort", 0),
                                                  p.get("IP", ""))):
        kind = port.get("Type", "tcp")
        private = port.get("PrivatePort", 0)
        if port.get("PublicPort"):
            address = port.get("IP", "")
            if ":" in address:
                address = f"[{address}]"
            text = f"{address}:{port['PublicPort']}->{private}/{kind}"
        else:
            text = f"{private}/{kind}"
        if text not in shown:
            shown.append(text)
    return ", ".join(shown)


class ContainerRow:
    """One ``GET /containers/json`` entry, as ``{{.Field}}`` sees it."""

    def __init__(self, summary: dict[str, Any], trunc: bool = True, now: float | None = None):
        self.raw = summary
        self.trunc = trunc
        self.now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        identifier = str(self.raw.get("Id", ""))
        return identifier[:12] if self.trunc else identifier

    @property
    def Image(self) -> str:
        image = str(self.raw.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            image_id = str(self.raw.get("ImageID", ""))
            if short_id(image) == short_id(image_id) and image.replace("sha256:", "") in \
                    image_id:
                return short_id(image)
            if "@" in image:
                image = image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:
        command = str(self.raw.get("Command", ""))
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    @property
    def CreatedAt(self) -> str:
        return go_time(float(self.raw.get("Created", 0)))

    @property
    def RunningFor(self) -> str:
        return human_duration(self.now - float(self.raw.get("Created", 0))) + " ago"

    @property
    def Ports(self) -> str:
        return display_ports(self.raw.get("Ports"))

    @property
    def State(self) -> str:
        return str(self.raw.get("State", ""))

    @property
    def Status(self) -> str:
        return str(self.raw.get("Status", ""))

    @property
    def Size(self) -> str:
        rw = self.raw.get("SizeRw")
        rootfs = self.raw.get("SizeRootFs")
        if rw is None and rootfs is None:
            return "0B"
        text = human_size(float(rw or 0), 3)
        if rootfs:
            text += f" (virtual {human_size(float(rootfs), 3)})"
        return text

    @property
    def Names(self) -> str:
        names = [name[1:] if name.startswith("/") else name
                 for name in self.raw.get("Names") or []]
        if self.trunc:
            for name in names:
                if "/" not in name:
                    names = [name]
                    break
        return ",".join(names)

    def _labels(self) -> dict[str, str]:
        return dict(self.raw.get("Labels") or {})

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self._labels().items()))

    def Label(self, name: str) -> str:
        return self._labels().get(name, "")

    @property
    def Mounts(self) -> str:
        names = []
        for mount in self.raw.get("Mounts") or []:
            name = str(mount.get("Name") or mount.get("Source") or "")
            if self.trunc and len(name) > 15 and mount.get("Name"):
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.raw.get("Mounts") or []
                       if m.get("Driver") == "local"))

    @property
    def Networks(self) -> str:
        networks = ((self.raw.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(networks))

    @property
    def Platform(self) -> str:
        return ""

    def to_json(self) -> dict[str, str]:
        fields = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                  "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status")
        return {name: getattr(self, name) for name in fields}


class ImageRow:
    """One line of ``sampan images``: an image with one of its repository:tag names."""

    def __init__(self, summary: dict[str, Any], repository: str, tag: str, digest: str,
                 trunc: bool = True, now: float | None = None) -> None:
        self.raw = summary
        self.Repository = repository
        self.Tag = tag
        self.Digest = digest
        self.trunc = trunc
        self.now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        identifier = str(self.raw.get("Id", ""))
        return short_id(identifier) if self.trunc else identifier

    @property
    def CreatedSince(self) -> str:
        created = float(self.raw.get("Created", 0))
        if created <= 0:
            return "N/A"
        return human_duration(self.now - created) + " ago"

    @property
    def CreatedAt(self) -> str:
        return go_time(float(self.raw.get("Created", 0)))

    @property
    def Size(self) -> str:
        return human_size(float(self.raw.get("Size", 0)), 3)

    VirtualSize = Size

    @property
    def Containers(self) -> str:
        count = int(self.raw.get("Containers", -1))
        return "N/A" if count < 0 else str(count)

    @property
    def SharedSize(self) -> str:
        shared = int(self.raw.get("SharedSize", -1))
        return "N/A" if shared < 0 else human_size(float(shared), 3)

    @property
    def UniqueSize(self) -> str:
        shared = int(self.raw.get("SharedSize", -1))
        if shared < 0:
            return "N/A"
        return human_size(float(self.raw.get("Size", 0)) - shared, 3)

    def to_json(self) -> dict[str, str]:
        fields = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
                  "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")
        return {name: getattr(self, name) for name in fields}


def image_rows(summaries: list[dict[str, Any]], trunc: bool = True,
               now: float | None = None) -> list[ImageRow]:
    """Docker's expansion: a row per repository:tag; digests per repository; ``<none>``."""
    rows: list[ImageRow] = []
    for summary in summaries:
        digests: dict[str, list[str]] = {}
        for item in summary.get("RepoDigests") or []:
            repository, _, digest = item.partition("@")
            digests.setdefault(repository, []).append(digest)
        tags = [t for t in summary.get("RepoTags") or [] if t != "<none>:<none>"]
        seen_repositories: set[str] = set()
        for reference in tags:
            slash = reference.rfind("/")
            colon = reference.rfind(":")
            repository, tag = ((reference[:colon], reference[colon + 1:]) if colon > slash
                               else (reference, "<none>"))
            seen_repositories.add(repository)
            digest = (digests.get(repository) or ["<none>"])[0]
            rows.append(ImageRow(summary, repository, tag, digest, trunc, now))
        for repository, values in digests.items():
            if repository in seen_repositories or repository == "<none>":
                continue
            for digest in values:
                rows.append(ImageRow(summary, repository, "<none>", digest, trunc, now))
        if not tags and not any(r != "<none>" for r in digests):
            rows.append(ImageRow(summary, "<none>", "<none>", "<none>", trunc, now))
    return rows
