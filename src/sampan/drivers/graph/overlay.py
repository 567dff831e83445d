"""The overlay graph driver: each layer holds only its own files; overlayfs stacks them.

Layout under ``<root>`` (Docker's overlay2 layout, simplified)::

    <cache id>/diff     the layer's files (whiteouts: char 0/0, opaque dirs: xattr)
    <cache id>/link     the layer's short name
    <cache id>/work     overlay's work dir (read-write layers only)
    <cache id>/empty    an empty lower dir (read-write layer of a scratch container)
    l/<short name>      symlink -> ../<cache id>/diff
    staging/            layers being unpacked or removed; emptied when the store opens

mount(2) passes all options in one page (4096 bytes here), so the lowerdir list uses the short
symlinks (``<root>/l/<12 chars>``, ~40 bytes per layer instead of ~100) to stay under it for
deep images (about 90 layers with the default data root).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import shutil
from typing import BinaryIO

from sampan import errdefs
from sampan.drivers.graph.changes import overlay_changes, tree_size, write_upper_diff
from sampan.drivers.graph.driver import WHITEOUT_OVERLAY, Change, KernelCalls, Mount
from sampan.drivers.graph.tarstream import TreeTarWriter

_CACHE_ID = re.compile(r"^[0-9a-f]{64}$")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _short_name() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode()[:12]


def overlay_supported(root: str, calls: KernelCalls) -> bool:
    """Can we mount overlayfs with an upper dir under ``root``? (Not if ``root`` is itself on
    overlayfs, or the kernel lacks overlay or the filesystem lacks trusted xattrs/d_type.)"""
    check = os.path.join(root, "staging", "check-" + secrets.token_hex(4))
    dirs = {name: os.path.join(check, name) for name in ("lower", "upper", "work", "merged")}
    try:
        for path in dirs.values():
            os.makedirs(path)
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        try:
            calls.mount("overlay", dirs["merged"], "overlay", 0, options)
        except OSError:
            return False
        calls.umount(dirs["merged"], KernelCalls.MNT_DETACH)
        return True
    finally:
        shutil.rmtree(check, ignore_errors=True)


class OverlayDriver:
    name = "overlay"
    whiteouts = WHITEOUT_OVERLAY

    def __init__(self, root: str, calls: KernelCalls | None = None) -> None:
        self.root = root
        self.calls = calls or KernelCalls()
        self._links = os.path.join(root, "l")
        self._staging = os.path.join(root, "staging")
        os.makedirs(self._links, mode=0o700, exist_ok=True)
        os.makedirs(self._staging, mode=0o700, exist_ok=True)

    # -- layers ------------------------------------------------------------------------------

    def cleanup(self, keep: set[str]) -> None:
        for name in os.listdir(self._staging):
            shutil.rmtree(os.path.join(self._staging, name), ignore_errors=True)
        for name in os.listdir(self.root):
            if _CACHE_ID.match(name) and name not in keep:
                self.remove_layer(name)
        for cache_id in keep:
            if os.path.isdir(os.path.join(self.root, cache_id)):
                self._ensure_link(cache_id)
        for short in os.listdir(self._links):
            link = os.path.join(self._links, short)
            if not os.path.exists(link):  # dangling: its layer is gone
                os.unlink(link)

    def _dir(self, cache_id: str) -> str:
        return os.path.join(self.root, cache_id)

    def layer_dir(self, cache_id: str) -> str:
        return os.path.join(self.root, cache_id, "diff")

    def _short_link(self, cache_id: str) -> str:
        with open(os.path.join(self._dir(cache_id), "link")) as f:
            return os.path.join(self._links, f.read().strip())

    def _ensure_link(self, cache_id: str) -> None:
        link_file = os.path.join(self._dir(cache_id), "link")
        with open(link_file) as f:
            short = f.read().strip()
        link = os.path.join(self._links, short)
        if not os.path.lexists(link):
            os.symlink(f"../{cache_id}/diff", link)

    def prepare_layer(self, cache_id: str, lowers: list[str]) -> str:
        staging = os.path.join(self._staging, cache_id)
        os.mkdir(staging, 0o700)
        os.mkdir(os.path.join(staging, "diff"), 0o755)
        with open(os.path.join(staging, "link"), "w") as f:
            f.write(_short_name())
        return os.path.join(staging, "diff")

    def commit_layer(self, cache_id: str) -> None:
        os.rename(os.path.join(self._staging, cache_id), self._dir(cache_id))
        self._ensure_link(cache_id)

    def abort_layer(self, cache_id: str) -> None:
        shutil.rmtree(os.path.join(self._staging, cache_id), ignore_errors=True)

    def remove_layer(self, cache_id: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self._short_link(cache_id))
        doomed = os.path.join(self._staging, cache_id + "-removed")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self._dir(cache_id), doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- read-write layers -------------------------------------------------------------------

    def create_rw(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        try:
            self.prepare_layer(cache_id, lowers)
            staging = os.path.join(self._staging, cache_id)
            os.mkdir(os.path.join(staging, "work"), 0o700)
            if not lowers:
                os.mkdir(os.path.join(staging, "empty"), 0o755)
            self.commit_layer(cache_id)
        except BaseException:
            self.abort_layer(cache_id)
            raise
        return self.rw_mounts(cache_id, lowers)

    def _lowerdir(self, lowers: list[str]) -> str:
        return ":".join(self._short_link(cache_id) for cache_id in lowers)

    def rw_mounts(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        lowerdir = self._lowerdir(lowers) if lowers else os.path.join(self._dir(cache_id), "empty")
        options = [
            f"lowerdir={lowerdir}",
            f"upperdir={self.layer_dir(cache_id)}",
            f"workdir={os.path.join(self._dir(cache_id), 'work')}",
        ]
        if len(",".join(options)) >= _PAGE_SIZE:
            raise errdefs.InvalidParameter(
                f"image has too many layers ({len(lowers)}) for one overlay mount"
            )
        return [Mount("overlay", "overlay", options)]

    def changes(self, cache_id: str, lowers: list[str]) -> list[Change]:
        return overlay_changes(self.layer_dir(cache_id), [self.layer_dir(c) for c in lowers])

    def export(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        upper = self.layer_dir(cache_id)
        writer = TreeTarWriter(out)
        if not lowers:
            writer.add_tree(upper)  # no lower layer: no whiteouts can matter
            writer.close()
            return
        # A read-only overlay with the upper dir as the top *lower* layer: no work dir, so it
        # does not compete with the container's own (possibly live) mount of the same upper.
        target = os.path.join(self._staging, f"{cache_id}-export-{secrets.token_hex(4)}")
        os.mkdir(target, 0o700)
        try:
            lowerdir = f"{upper}:{self._lowerdir(lowers)}"
            self.calls.mount("overlay", target, "overlay", KernelCalls.MS_RDONLY,
                             f"lowerdir={lowerdir}")
            try:
                writer.add_tree(target)
                writer.close()
            finally:
                self.calls.umount(target, KernelCalls.MNT_DETACH)
        finally:
            os.rmdir(target)

    def diff(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        writer = TreeTarWriter(out)
        write_upper_diff(writer, self.layer_dir(cache_id))
        writer.close()

    def rw_size(self, cache_id: str, lowers: list[str]) -> int:
        return tree_size(self.layer_dir(cache_id))
