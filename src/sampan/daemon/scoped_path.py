"""Paths inside a container's root, resolved so that nothing ever lands outside it.

The root is a directory file descriptor: ``/proc/<pid>/root`` of a running container (its
own mount namespace: volumes, binds and tmpfs mounts are all there) or the mounted root of
a stopped one. Resolution is done in two steps, both relative to that fd:

1. :func:`resolve` walks the path one component at a time, reading symlinks itself
   (``readlinkat``) and interpreting them as the container would: an absolute target
   restarts at the container's root, ``..`` never climbs above it (Docker's
   ``FollowSymlinkInScope``). It returns the resolved *container* path.
2. :func:`open_dir` / :func:`open_parent` open that path component by component with
   ``O_NOFOLLOW``: if a component was swapped for a symlink in between (a process in the
   container racing us), the open fails with ELOOP/ENOTDIR instead of following it. So the
   kernel never follows a link chosen by the container, and no ``..`` is ever passed to it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque

from sampan import errdefs

MAX_SYMLINKS = 255
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def components(path: str) -> list[str]:
    """Lexically cleaned components of a container path (``..`` above the root is the
    root, as in the container: ``/../../etc`` is ``/etc``)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def join(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def _open_parts(root_fd: int, parts: list[str]) -> int:
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    try:
        for part in parts:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def resolve(root_fd: int, path: str, *, follow_last: bool = True) -> str:
    """The container path ``path`` with every symlink resolved inside the root (the last
    component too when ``follow_last``). Components that do not exist are kept as
    written (lexically cleaned)."""
    pending = deque(components(path))
    done: list[str] = []
    links = 0
    dir_fd = _open_parts(root_fd, [])
    try:
        while pending:
            part = pending.popleft()
            if part == "..":  # from a symlink's target
                if done:
                    done.pop()
                os.close(dir_fd)
                dir_fd = _open_parts(root_fd, done)
                continue
            if part == ".":
                continue
            last = not pending
            try:
                info = os.lstat(part, dir_fd=dir_fd)
            except FileNotFoundError:
                done.append(part)
                return join(components(join(done + list(pending))))
            except NotADirectoryError:
                return join(components(join([*done, part, *pending])))
            if stat.S_ISLNK(info.st_mode) and (follow_last or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise errdefs.InvalidParameter(
                        f"too many levels of symbolic links in {path}")
                target = os.readlink(part, dir_fd=dir_fd)
                rest = [p for p in target.split("/") if p not in ("", ".")]
                if target.startswith("/"):
                    done = []
                    os.close(dir_fd)
                    dir_fd = _open_parts(root_fd, [])
                pending.extendleft(reversed(rest))
                continue
            done.append(part)
            if not last:
                if not stat.S_ISDIR(info.st_mode):
                    return join(done + list(pending))
                child = os.open(part, DIR_FLAGS, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = child
        return join(done)
    finally:
        os.close(dir_fd)


def open_dir(root_fd: int, resolved: str) -> int:
    """Open a resolved container path that must be a directory (no symlink followed)."""
    return _open_parts(root_fd, components(resolved))


def open_parent(root_fd: int, resolved: str) -> tuple[int, str]:
    """(fd of the parent directory, last component) of a resolved path; for the root
    itself the root's fd and ``"."``."""
    parts = components(resolved)
    if not parts:
        return _open_parts(root_fd, []), "."
    return _open_parts(root_fd, parts[:-1]), parts[-1]


def make_dirs(root_fd: int, parts: list[str], mode: int = 0o755) -> int:
    """Open ``parts`` under the root, creating missing directories; never follows a
    symlink (an existing non-directory component fails with ENOTDIR/ELOOP)."""
    fd = os.open(".", DIR_FLAGS, dir_fd=root_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, mode, dir_fd=fd)
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise errdefs.InvalidParameter(
                        f"cannot create directory {part}: not a directory") from exc
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
