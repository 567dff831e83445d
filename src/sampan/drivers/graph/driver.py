"""What a graph driver is: the shapes it returns and the interface every driver implements.

A driver owns directories named by *cache ids* (random ids chosen by the layer store) and knows
how to lay a layer out on disk (overlay: only the layer's own files, whiteouts as char 0/0 and
opaque dirs as an xattr; vfs: a full copy of the tree with deletions applied). It *describes*
the mounts that make a container's root; it never mounts a container root itself. It may mount
temporarily inside one call (export) and unmounts before returning.

The few syscalls Python's ``os`` lacks (mount, umount2, syncfs) go through :class:`KernelCalls`,
a thin object over ``sampan.kernel`` injected into the drivers and the layer store so tests
can record them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

from sampan.kernel import fs as kfs
from sampan.kernel import mount as kmount

CHANGE_MODIFY = 0
CHANGE_ADD = 1
CHANGE_DELETE = 2

# Whiteout modes understood by sampan.drivers.graph.unpack.
WHITEOUT_OVERLAY = "overlay"  # .wh.x -> char device 0/0; .wh..wh..opq -> trusted.overlay.opaque=y
WHITEOUT_DELETE = "delete"  # .wh.x -> x removed; .wh..wh..opq -> lower children removed


@dataclass(frozen=True)
class Mount:
    """One OCI mount for the container's rootfs (destination is the rootfs itself)."""

    type: str
    source: str
    options: list[str]


@dataclass(frozen=True)
class Change:
    """One changed path, as ``docker diff`` shows it (kind: 0 modified, 1 added, 2 deleted)."""

    path: str
    kind: int


class KernelCalls:
    """mount(2), umount2(2) and syncfs(2), delegated to ``sampan.kernel`` (errno preserved,
    EINTR retried). Tests pass a recording double with the same three methods."""

    MNT_DETACH = kmount.MNT_DETACH
    MS_RDONLY = kmount.MS_RDONLY

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        kmount.mount(source, target, fstype, flags, data)

    def umount(self, target: str, flags: int = 0) -> None:
        kmount.umount(target, flags)

    def syncfs(self, path: str) -> None:
        """Flush the filesystem holding ``path`` (cheaper than sync(2) or an fsync per file)."""
        kfs.syncfs(path)


class GraphDriver(Protocol):
    """The interface the layer store drives; ``lowers`` are cache ids, top layer first."""

    name: str
    whiteouts: str

    def cleanup(self, keep: set[str]) -> None:
        """Remove staging leftovers and every layer dir whose cache id is not in ``keep``."""

    def prepare_layer(self, cache_id: str, lowers: list[str]) -> str:
        """Make the staging dir for a new layer on top of ``lowers``; return where to unpack."""

    def commit_layer(self, cache_id: str) -> None:
        """Move the staged layer into place (atomic rename)."""

    def abort_layer(self, cache_id: str) -> None:
        """Remove a staged layer."""

    def remove_layer(self, cache_id: str) -> None:
        """Remove a committed layer (or read-write layer)."""

    def layer_dir(self, cache_id: str) -> str:
        """The layer's own tree (overlay: its diff dir; vfs: the full tree)."""

    def create_rw(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        """Make a container's read-write layer on top of ``lowers``; return its mounts."""

    def rw_mounts(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        """The mounts of an existing read-write layer."""

    def changes(self, cache_id: str, lowers: list[str]) -> list[Change]:
        """A/C/D of the read-write layer against the image."""

    def export(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        """Write the container's whole filesystem as a tar to ``out``."""

    def diff(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        """Write the read-write layer's changes as a layer tar (``.wh.`` whiteouts) to ``out``."""

    def rw_size(self, cache_id: str, lowers: list[str]) -> int:
        """Bytes of regular files the container added or changed."""
