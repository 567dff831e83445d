"""Resolve a container path inside its root without ever leaving it.

A mount destination such as ``/etc/hosts`` may be a symlink in an untrusted image
(``/etc/hosts -> /../../../host/file``). Every component is resolved by hand with lstat and
readlink, and ``..`` or an absolute link target is clamped at the root, so the result always
lies under ``root`` (the same rule as chroot(2) applies to the container later).
"""

import errno
import os

_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """``root`` joined with ``unsafe`` after resolving symlinks as if ``root`` were ``/``."""
    root = os.path.abspath(root)
    pending = [part for part in unsafe.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            is_link = os.path.islink(candidate)
        except OSError:
            is_link = False
        if not is_link:
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *resolved)
