"""What a graph driver is: the shapes it returns and the interface every driver implements.

A driver owns directories named by *cache ids* (random ids chosen by the layer store) and knows
how to lay a layer out on disk (overlay: only the layer's own files, whiteouts as char 0/0 and
opaque dirs as an xattr; vfs: a full copy of the tree with deletions applied). It *describes*
the mounts that make a container's root; it never mounts a container root itself. It may mount
temporarily inside one call (export) and unmounts before returning.

The few syscalls Python's ``os`` lacks (mount, umount2, syncfs) are in :class:`KernelCalls`,
injected so tests can record them.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from sampan.kernel.libc import LIBC, check, cstr, retry

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
    """mount(2), umount2(2) and syncfs(2) through libc, errno preserved."""

    MNT_DETACH = 2
    MS_RDONLY = 1

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        LIBC.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        retry(
            lambda: check(
                LIBC.mount(cstr(source), cstr(target), cstr(fstype), flags, cstr(data)),
                "mount",
                target,
            )
        )

    def umount(self, target: str, flags: int = 0) -> None:
        retry(lambda: check(LIBC.umount2(cstr(target), flags), "umount2", target))

    def syncfs(self, path: str) -> None:
        """Flush the filesystem holding ``path`` (cheaper than sync(2) or an fsync per file)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            retry(lambda: check(LIBC.syncfs(fd), "syncfs", path))
        finally:
            os.close(fd)


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
