"""A container's changes (``docker diff``) and the layer tar that records them.

Two ways to find them, one per driver:

* overlay: the upper directory *is* the change set. A whiteout (char 0/0) is a deletion, an
  opaque directory hides every lower child it does not itself hold, anything else is added
  (absent from the image) or modified (present in the image). The image is looked up in the
  lower layer directories with overlay's own rules (:class:`LowerView`), without mounting.
* vfs: compare the container's full copy with the image's tree (:func:`tree_changes`), with
  Docker's rules: mode, owner, device number, ``security.capability`` and, for non-directories,
  size and mtime. A directory holding a change is itself reported modified (its entry carries
  the permissions a diff must restore).

Paths are absolute (``/etc/hosts``) and sorted, so a directory always precedes its children.
"""

from __future__ import annotations

import errno
import os
import stat

from sampan.drivers.graph.driver import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change
from sampan.drivers.graph.tarstream import (
    OPAQUE_MARKER,
    OVERLAY_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    TreeTarWriter,
    is_whiteout,
)

_OPAQUE = OVERLAY_XATTR_PREFIX + "opaque"


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            return False
        raise


class LowerView:
    """The merged view of overlay layer directories (top first), read without a mount."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers

    def _walk(self, parts: list[str]) -> tuple[os.stat_result | None, list[str]]:
        """The merged object at ``parts``: its stat (None if absent) and, for a directory,
        the layer paths that contribute entries to it (top first)."""
        found: os.stat_result | None = None
        contributing: list[str] = []
        for layer in self.layers:
            path = layer
            hidden_below = False
            st: os.stat_result | None = None if parts else os.lstat(layer)
            for i, comp in enumerate(parts):
                path = os.path.join(path, comp)
                st = _lstat(path)
                if st is None:
                    break
                if is_whiteout(st):
                    return found, contributing
                if i < len(parts) - 1:
                    if not stat.S_ISDIR(st.st_mode):
                        return found, contributing  # a lower dir is covered by a non-dir
                    if is_opaque(path):
                        hidden_below = True
            if st is None:
                if hidden_below:
                    return found, contributing
                continue
            if found is None:
                found = st
            if not stat.S_ISDIR(st.st_mode):
                return found, contributing
            if not stat.S_ISDIR(found.st_mode):
                return found, contributing
            contributing.append(path)
            if hidden_below or is_opaque(path):
                return found, contributing
        return found, contributing

    def lookup(self, parts: list[str]) -> os.stat_result | None:
        return self._walk(parts)[0]

    def listdir(self, parts: list[str]) -> set[str]:
        _, layers = self._walk(parts)
        visible: set[str] = set()
        hidden: set[str] = set()
        for path in layers:
            for name in os.listdir(path):
                if name in visible or name in hidden:
                    continue
                if is_whiteout(os.lstat(os.path.join(path, name))):
                    hidden.add(name)
                else:
                    visible.add(name)
        return visible


def _abs(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def overlay_changes(upper: str, lowers: list[str]) -> list[Change]:
    """Changes recorded in an overlay upper directory over ``lowers`` (layer dirs, top first)."""
    view = LowerView(lowers)
    changes: list[Change] = []

    def walk(dir_path: str, parts: list[str], parent_in_lower: bool) -> None:
        names = sorted(os.listdir(dir_path))
        for name in names:
            path = os.path.join(dir_path, name)
            child = [*parts, name]
            st = os.lstat(path)
            in_lower = parent_in_lower and view.lookup(child) is not None
            if is_whiteout(st):
                if in_lower:
                    changes.append(Change(_abs(child), CHANGE_DELETE))
                continue
            changes.append(Change(_abs(child), CHANGE_MODIFY if in_lower else CHANGE_ADD))
            if stat.S_ISDIR(st.st_mode):
                lower_st = view.lookup(child) if in_lower else None
                lower_is_dir = lower_st is not None and stat.S_ISDIR(lower_st.st_mode)
                if lower_is_dir and is_opaque(path):
                    present = set(os.listdir(path))
                    for gone in sorted(view.listdir(child) - present):
                        changes.append(Change(_abs([*child, gone]), CHANGE_DELETE))
                walk(path, child, lower_is_dir and not is_opaque(path))

    walk(upper, [], True)
    return sorted(changes, key=lambda c: c.path)


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


def _differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
        new.st_mode,
        new.st_uid,
        new.st_gid,
        new.st_rdev,
    ):
        return True
    if not stat.S_ISDIR(new.st_mode) and (
        old.st_size != new.st_size or old.st_mtime_ns != new.st_mtime_ns
    ):
        return True
    if stat.S_ISLNK(new.st_mode) and os.readlink(old_path) != os.readlink(new_path):
        return True
    return _capability(old_path) != _capability(new_path)


def tree_changes(old_root: str | None, new_root: str) -> list[Change]:
    """Changes from the tree ``old_root`` (None: empty) to the tree ``new_root``."""
    changes: list[Change] = []

    def added(path: str, parts: list[str]) -> None:
        changes.append(Change(_abs(parts), CHANGE_ADD))
        if stat.S_ISDIR(os.lstat(path).st_mode):
            for name in sorted(os.listdir(path)):
                added(os.path.join(path, name), [*parts, name])

    def compare(old_dir: str, new_dir: str, parts: list[str]) -> bool:
        """Report changes below the directories; True if there were any."""
        before = len(changes)
        old_names = set(os.listdir(old_dir))
        new_names = set(os.listdir(new_dir))
        for name in sorted(old_names | new_names):
            child = [*parts, name]
            old_path = os.path.join(old_dir, name)
            new_path = os.path.join(new_dir, name)
            if name not in new_names:
                changes.append(Change(_abs(child), CHANGE_DELETE))
                continue
            if name not in old_names:
                added(new_path, child)
                continue
            old_st = os.lstat(old_path)
            new_st = os.lstat(new_path)
            both_dirs = stat.S_ISDIR(old_st.st_mode) and stat.S_ISDIR(new_st.st_mode)
            if not both_dirs:
                if _differs(old_path, old_st, new_path, new_st):
                    changes.append(Change(_abs(child), CHANGE_MODIFY))
                    if stat.S_ISDIR(new_st.st_mode):
                        for name2 in sorted(os.listdir(new_path)):
                            added(os.path.join(new_path, name2), [*child, name2])
                continue
            index = len(changes)
            inner = compare(old_path, new_path, child)
            if inner or _differs(old_path, old_st, new_path, new_st):
                changes.insert(index, Change(_abs(child), CHANGE_MODIFY))
        return len(changes) > before

    if old_root is None:
        for name in sorted(os.listdir(new_root)):
            added(os.path.join(new_root, name), [name])
    else:
        compare(old_root, new_root, [])
    return sorted(changes, key=lambda c: c.path)


def write_upper_diff(writer: TreeTarWriter, upper: str) -> None:
    """The overlay upper directory as a layer tar: whiteouts become ``.wh.<name>``, opaque
    directories get a ``.wh..wh..opq`` entry (OCI image-spec, "Whiteouts")."""

    def walk(dir_path: str, prefix: str) -> None:
        for name in sorted(os.listdir(dir_path)):
            path = os.path.join(dir_path, name)
            st = os.lstat(path)
            if is_whiteout(st):
                writer.add_empty(prefix + WHITEOUT_PREFIX + name, st)
                continue
            writer.add(path, prefix + name, st)
            if stat.S_ISDIR(st.st_mode):
                if is_opaque(path):
                    writer.add_empty(prefix + name + "/" + OPAQUE_MARKER, st, st.st_mode & 0o777)
                walk(path, prefix + name + "/")

    walk(upper, "")


def write_changes_diff(writer: TreeTarWriter, root: str, changes: list[Change]) -> None:
    """A layer tar of ``changes`` read from the tree ``root`` (vfs)."""
    for change in changes:
        rel = change.path.lstrip("/")
        if change.kind == CHANGE_DELETE:
            parent, _, name = rel.rpartition("/")
            parent_path = os.path.join(root, parent) if parent else root
            st = os.lstat(parent_path)
            writer.add_empty((parent + "/" if parent else "") + WHITEOUT_PREFIX + name, st)
        else:
            writer.add(os.path.join(root, rel), rel)


def tree_size(root: str) -> int:
    """Bytes of regular files below ``root`` (each inode once), whiteouts excluded."""
    seen: set[int] = set()
    total = 0
    for dir_path, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dir_path, name))
            if stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total
