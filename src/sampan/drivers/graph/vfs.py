"""The vfs graph driver: every layer is a full copy of its parent with the layer applied.

For hosts where overlayfs is missing or the data root itself is on overlayfs (an overlay upper
directory cannot live on overlayfs). Slow and large, but needs nothing from the kernel beyond
a bind mount. Layout under ``<root>``: ``dir/<cache id>`` (committed trees), ``staging/<cache
id>`` (being unpacked or removed; emptied when the store opens).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from typing import BinaryIO

from sampan.drivers.graph.changes import tree_changes, write_changes_diff
from sampan.drivers.graph.driver import (
    CHANGE_DELETE,
    WHITEOUT_DELETE,
    Change,
    Mount,
)
from sampan.drivers.graph.tarstream import TreeTarWriter, read_xattrs


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    for name, value in read_xattrs(src).items():
        os.setxattr(dst, name, value, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid/setgid
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_file(src: str, dst: str, size: int) -> None:
    in_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        out_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            # copy_file_range(2): the kernel copies (or reflinks) without a trip through us.
            remaining = size
            while remaining > 0:
                copied = os.copy_file_range(in_fd, out_fd, remaining)
                if copied == 0:
                    break
                remaining -= copied
        finally:
            os.close(out_fd)
    finally:
        os.close(in_fd)


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree ``src`` into the existing empty directory ``dst``: contents, owners, modes
    (setuid included), xattrs, times, devices, fifos, symlinks and hardlinks within the tree."""
    links: dict[int, str] = {}
    dirs: list[tuple[str, str, os.stat_result]] = []

    def walk(src_dir: str, dst_dir: str) -> None:
        with os.scandir(src_dir) as scan:
            entries = list(scan)
        for entry in entries:
            s = entry.path
            d = os.path.join(dst_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                walk(s, d)
                dirs.append((s, d, st))
                continue
            if stat.S_ISREG(mode) and st.st_nlink > 1:
                if st.st_ino in links:
                    os.link(links[st.st_ino], d, follow_symlinks=False)
                    continue
                links[st.st_ino] = d
            if stat.S_ISREG(mode):
                _copy_file(s, d, st.st_size)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(d, mode, st.st_rdev)
            else:
                continue  # sockets: not part of an image
            _copy_metadata(s, d, st)

    walk(src, dst)
    for s, d, st in dirs:  # children first (appended after their walk): mtimes stick
        _copy_metadata(s, d, st)
    _copy_metadata(src, dst, os.lstat(src))


class VfsDriver:
    name = "vfs"
    whiteouts = WHITEOUT_DELETE

    def __init__(self, root: str) -> None:
        self.root = root
        self._dirs = os.path.join(root, "dir")
        self._staging = os.path.join(root, "staging")
        os.makedirs(self._dirs, mode=0o700, exist_ok=True)
        os.makedirs(self._staging, mode=0o700, exist_ok=True)

    def cleanup(self, keep: set[str]) -> None:
        for name in os.listdir(self._staging):
            shutil.rmtree(os.path.join(self._staging, name), ignore_errors=True)
        for name in os.listdir(self._dirs):
            if name not in keep:
                self.remove_layer(name)

    def layer_dir(self, cache_id: str) -> str:
        return os.path.join(self._dirs, cache_id)

    def prepare_layer(self, cache_id: str, lowers: list[str]) -> str:
        staging = os.path.join(self._staging, cache_id)
        os.mkdir(staging, 0o755)
        if lowers:
            copy_tree(self.layer_dir(lowers[0]), staging)
        return staging

    def commit_layer(self, cache_id: str) -> None:
        os.rename(os.path.join(self._staging, cache_id), self.layer_dir(cache_id))

    def abort_layer(self, cache_id: str) -> None:
        shutil.rmtree(os.path.join(self._staging, cache_id), ignore_errors=True)

    def remove_layer(self, cache_id: str) -> None:
        doomed = os.path.join(self._staging, cache_id + "-removed")
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.layer_dir(cache_id), doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def create_rw(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        try:
            self.prepare_layer(cache_id, lowers)
            self.commit_layer(cache_id)
        except BaseException:
            self.abort_layer(cache_id)
            raise
        return self.rw_mounts(cache_id, lowers)

    def rw_mounts(self, cache_id: str, lowers: list[str]) -> list[Mount]:
        return [Mount("bind", self.layer_dir(cache_id), ["rbind", "rw"])]

    def changes(self, cache_id: str, lowers: list[str]) -> list[Change]:
        old = self.layer_dir(lowers[0]) if lowers else None
        return tree_changes(old, self.layer_dir(cache_id))

    def export(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        writer = TreeTarWriter(out)
        writer.add_tree(self.layer_dir(cache_id))
        writer.close()

    def diff(self, cache_id: str, lowers: list[str], out: BinaryIO) -> None:
        writer = TreeTarWriter(out)
        write_changes_diff(writer, self.layer_dir(cache_id), self.changes(cache_id, lowers))
        writer.close()

    def rw_size(self, cache_id: str, lowers: list[str]) -> int:
        root = self.layer_dir(cache_id)
        total = 0
        for change in self.changes(cache_id, lowers):
            if change.kind == CHANGE_DELETE:
                continue
            st = os.lstat(os.path.join(root, change.path.lstrip("/")))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        return total
