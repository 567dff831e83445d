"""Container paths resolved inside a root (``daemon/scoped_path.py``) and the ``docker cp``
tar code (``daemon/archive_tar.py``): symlinks, absolute or ``../..``, never lead out."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan import errdefs
from sampan.daemon import scoped_path
from sampan.daemon.archive import follows_last, go_file_mode, requested_name
from sampan.daemon.archive_tar import ExtractOptions, extract_archive, write_archive


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    rootfs = tmp_path / "root"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("container\n")
    (rootfs / "d" / "sub").mkdir(parents=True)
    os.symlink("/etc", rootfs / "abs")
    os.symlink("../../../../../etc", rootfs / "d" / "rel")
    os.symlink(str(tmp_path / "outside"), rootfs / "host")
    os.symlink("loop2", rootfs / "loop1")
    os.symlink("loop1", rootfs / "loop2")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host\n")
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield rootfs, fd
    finally:
        os.close(fd)


def test_symlinks_resolve_inside_the_root(root: tuple[Path, int], tmp_path: Path) -> None:
    _, fd = root
    assert scoped_path.resolve(fd, "/abs/passwd") == "/etc/passwd"
    assert scoped_path.resolve(fd, "/d/rel/passwd") == "/etc/passwd"
    assert scoped_path.resolve(fd, "/../../d/sub/../../etc") == "/etc"
    assert scoped_path.resolve(fd, "/abs", follow_last=False) == "/abs"
    # /host points at a host path: it names that path *inside* the root, where it does
    # not exist
    outside = scoped_path.resolve(fd, "/host/secret")
    assert outside == str(tmp_path / "outside" / "secret")
    with pytest.raises(FileNotFoundError):
        parent, _base = scoped_path.open_parent(fd, outside)
        os.close(parent)
    with pytest.raises(errdefs.InvalidParameter, match="too many levels"):
        scoped_path.resolve(fd, "/loop1")


def test_strict_open_refuses_a_symlink_swapped_in(root: tuple[Path, int]) -> None:
    rootfs, fd = root
    resolved = scoped_path.resolve(fd, "/d/sub")
    (rootfs / "d" / "sub").rmdir()
    os.symlink("/", rootfs / "d" / "sub")
    with pytest.raises(OSError):
        scoped_path.open_dir(fd, resolved)


def test_docker_path_rules() -> None:
    assert requested_name("/a/b/") == "b" and requested_name("/a/.") == "."
    assert requested_name("/") == "/"
    assert follows_last("/link/") and follows_last("/link/.") and not follows_last("/link")
    assert go_file_mode(0o40755) == (1 << 31) | 0o755
    assert go_file_mode(0o120777) == (1 << 27) | 0o777
    assert go_file_mode(0o41777) == (1 << 31) | (1 << 20) | 0o777
    assert go_file_mode(0o104755) == (1 << 23) | 0o755
    assert go_file_mode(0o20666) == (1 << 26) | (1 << 21) | 0o666


def tar_of(*members: tuple[str, bytes, bytes, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            info.uid, info.gid = os.getuid(), os.getgid()
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_extraction_through_symlinks_stays_in_the_root(root: tuple[Path, int],
                                                      tmp_path: Path) -> None:
    rootfs, fd = root
    archive = tar_of(("evil", tarfile.SYMTYPE, b"", str(tmp_path / "outside")),
                     ("evil/pwned", tarfile.REGTYPE, b"x", ""),
                     ("host/pwned2", tarfile.REGTYPE, b"x", ""),
                     ("d/rel/new", tarfile.REGTYPE, b"in etc", ""))
    extract_archive(fd, "/", archive, ExtractOptions())
    assert sorted(os.listdir(tmp_path / "outside")) == ["secret"]
    assert (rootfs / "etc" / "new").read_text() == "in etc"
    assert (rootfs / str(tmp_path / "outside")[1:] / "pwned").exists()
    with pytest.raises(errdefs.InvalidParameter):
        extract_archive(fd, "/", tar_of(("../../x", tarfile.REGTYPE, b"x", "")),
                        ExtractOptions())
    with pytest.raises(errdefs.InvalidParameter, match="cannot overwrite directory"):
        extract_archive(fd, "/", tar_of(("etc", tarfile.REGTYPE, b"x", "")),
                        ExtractOptions(no_overwrite_dir_non_dir=True))


def test_archive_is_named_after_the_request_and_keeps_links(root: tuple[Path, int]) -> None:
    _, fd = root
    out = io.BytesIO()
    write_archive(fd, "/d", "renamed", out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"renamed", "renamed/sub", "renamed/rel"}
    assert members["renamed/rel"].issym()
    assert members["renamed/rel"].linkname == "../../../../../etc"
