"""Filesystem-wide calls Python's ``os`` lacks: syncfs(2)."""

import os

from sampan.kernel.libc import LIBC, check, retry


def syncfs(path: str) -> None:
    """syncfs(2) on the filesystem holding ``path``: flushes every dirty inode of that one
    filesystem, cheaper than sync(2) (all filesystems) or an fsync(2) per file written."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        retry(lambda: check(LIBC.syncfs(fd), "syncfs", path))
    finally:
        os.close(fd)
