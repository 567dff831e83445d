"""vfs change detection (tree comparison) on plain directories, no root needed."""

from __future__ import annotations

import os

from sampan.drivers.graph import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change
from sampan.drivers.graph.changes import tree_changes
from sampan.drivers.graph.vfs import copy_tree


def _write(path: str, data: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)


def test_tree_changes_reports_docker_diff_kinds(tmp_path: object) -> None:
    old = os.path.join(str(tmp_path), "old")
    new = os.path.join(str(tmp_path), "new")
    _write(f"{old}/etc/hosts", "127.0.0.1 localhost\n")
    _write(f"{old}/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
    _write(f"{old}/gone/file", "x")
    _write(f"{old}/same/file", "x")
    os.symlink("etc/hosts", f"{old}/link")
    os.mkdir(new)
    copy_tree(old, new)
    assert tree_changes(old, new) == []
    _write(f"{new}/etc/passwd", "root:x:0:0::/root:/bin/bash\n")
    os.unlink(f"{new}/gone/file")
    os.rmdir(f"{new}/gone")
    _write(f"{new}/added/deep/file", "new")
    os.unlink(f"{new}/link")
    os.symlink("etc/passwd", f"{new}/link")
    assert tree_changes(old, new) == [
        Change("/added", CHANGE_ADD),
        Change("/added/deep", CHANGE_ADD),
        Change("/added/deep/file", CHANGE_ADD),
        Change("/etc", CHANGE_MODIFY),
        Change("/etc/passwd", CHANGE_MODIFY),
        Change("/gone", CHANGE_DELETE),
        Change("/link", CHANGE_MODIFY),
    ]


def test_tree_changes_from_nothing_adds_everything(tmp_path: object) -> None:
    new = os.path.join(str(tmp_path), "new")
    _write(f"{new}/a/b", "x")
    assert tree_changes(None, new) == [Change("/a", CHANGE_ADD), Change("/a/b", CHANGE_ADD)]


def test_copy_tree_keeps_hardlinks_modes_and_times(tmp_path: object) -> None:
    src = os.path.join(str(tmp_path), "src")
    dst = os.path.join(str(tmp_path), "dst")
    _write(f"{src}/f", "data")
    os.link(f"{src}/f", f"{src}/g")
    os.chmod(f"{src}/f", 0o751)
    os.utime(f"{src}/f", ns=(1, 1_500_000_000_123_456_789))
    os.mkdir(dst)
    copy_tree(src, dst)
    assert os.lstat(f"{dst}/f").st_ino == os.lstat(f"{dst}/g").st_ino
    assert os.lstat(f"{dst}/f").st_mode & 0o7777 == 0o751
    assert os.lstat(f"{dst}/f").st_mtime_ns == 1_500_000_000_123_456_789
