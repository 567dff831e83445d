"""Mounting a container's root filesystem where its OCI bundle expects it.

The layer store *describes* the read-write layer's mounts; this is the one place in the daemon
that makes them (``<exec-root>/bundles/<id>/rootfs``) and undoes them. The mount lives in the
host's mount namespace, so it outlives a crash of sampand: a restarted daemon finds it there
(``is_mounted``) and the running container keeps its root (it pivoted into it anyway).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from typing import Protocol


class MountSpec(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def options(self) -> list[str]: ...


class MountCalls(Protocol):
    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None: ...
    def umount(self, target: str, flags: int = 0) -> None: ...


MNT_DETACH = 2


def is_mounted(target: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Is something mounted exactly at ``target`` (field 5 of proc(5)'s mountinfo)?"""
    target = os.path.realpath(target)
    try:
        with open(mountinfo) as handle:
            for line in handle:
                fields = line.split(" ")
                if len(fields) > 4 and fields[4].replace("\\040", " ") == target:
                    return True
    except FileNotFoundError:
        return False
    return False


class RootfsMounter:
    def __init__(self, calls: MountCalls) -> None:
        self._calls = calls

    def mount(self, mounts: Sequence[MountSpec], target: str) -> None:
        os.makedirs(target, mode=0o755, exist_ok=True)
        if is_mounted(target):
            return
        for spec in mounts:
            self._calls.mount(spec.source, target, spec.type, 0, ",".join(spec.options))

    def unmount(self, target: str) -> None:
        """Lazy unmount (``MNT_DETACH``): a process still holding a file there (an exec
        being torn down) must not make the container's removal fail."""
        while is_mounted(target):
            try:
                self._calls.umount(target, MNT_DETACH)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOENT):
                    break
                raise
        with contextlib.suppress(OSError):
            os.rmdir(target)
