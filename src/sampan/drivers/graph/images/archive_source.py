"""The files of an image archive, read safely from a tar stream or a directory.

``docker load`` input is a tar stream whose index (``manifest.json``, ``index.json``) may come
*after* the layers, so a stream is spooled first: every regular file goes to a private
temporary directory (under the store's root, removed afterwards, and swept on the next start
if we crash). Nothing from the archive is ever created as a symlink or hardlink on disk:
links are kept as a name map and resolved lexically inside the archive, so ``layer.tar ->
../<hex>.tar`` (as skopeo writes) works and ``../../etc/passwd`` is an error.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from typing import BinaryIO

from sampan import errdefs

MAX_INDEX_BYTES = 32 << 20  # manifest.json, index.json, configs: far below this in practice
_MAX_LINK_HOPS = 16


def clean_member_name(name: str) -> str:
    """``./a/b`` -> ``a/b``; refuses absolute names and ``..`` components."""
    if name.startswith("/") or "\x00" in name:
        raise errdefs.InvalidParameter(f"invalid path in archive: {name!r}")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise errdefs.InvalidParameter(f"invalid path in archive: {name!r}")
    return "/".join(parts)


class ArchiveFiles:
    """Read-only view of the files in an archive."""

    def __init__(self, directory: str, links: dict[str, str], owned: bool) -> None:
        self._directory = directory
        self._links = links  # name -> target name (already resolved relative to the archive)
        self._owned = owned

    @classmethod
    def from_directory(cls, path: str) -> ArchiveFiles:
        return cls(os.path.realpath(path), {}, owned=False)

    @classmethod
    def from_tar_stream(cls, stream: BinaryIO, spool_parent: str) -> ArchiveFiles:
        """Spool the regular files of a tar stream into a new directory under ``spool_parent``."""
        os.makedirs(spool_parent, exist_ok=True)
        directory = tempfile.mkdtemp(prefix="load-", dir=spool_parent)
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    _spool_member(archive, member, directory, links)
        except tarfile.TarError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise errdefs.InvalidParameter(f"invalid image archive: {exc}") from exc
        except EOFError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise errdefs.InvalidParameter("invalid image archive: unexpected end of data") from exc
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise errdefs.InvalidParameter(f"conflicting entries in image archive: {exc}") from exc
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise errdefs.System(f"spool image archive: {exc}") from exc
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return cls(directory, links, owned=True)

    @property
    def spooled(self) -> bool:
        """True when the files are our own spooled copies (not a user's directory)."""
        return self._owned

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> ArchiveFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _resolve(self, name: str) -> str:
        current = clean_member_name(name)
        for _ in range(_MAX_LINK_HOPS):
            target = self._links.get(current)
            if target is None:
                return current
            current = target
        raise errdefs.InvalidParameter(f"too many links in archive at {name!r}")

    def _disk_path(self, name: str) -> str:
        resolved = self._resolve(name)
        path = os.path.join(self._directory, resolved)
        if not self._owned:
            # A user-supplied directory may contain symlinks: they must stay inside it.
            real = os.path.realpath(path)
            if real != self._directory and not real.startswith(self._directory + os.sep):
                raise errdefs.InvalidParameter(f"path escapes the image layout: {name!r}")
            path = real
        return path

    def exists(self, name: str) -> bool:
        try:
            return os.path.isfile(self._disk_path(name))
        except errdefs.InvalidParameter:
            return False

    def open(self, name: str) -> BinaryIO:
        path = self._disk_path(name)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise errdefs.InvalidParameter(f"missing file in image archive: {name}") from exc

    def size(self, name: str) -> int:
        return os.stat(self._disk_path(name)).st_size

    def read_small(self, name: str) -> bytes:
        """The bytes of an index/JSON file, refusing implausibly large ones."""
        with self.open(name) as handle:
            data = handle.read(MAX_INDEX_BYTES + 1)
        if len(data) > MAX_INDEX_BYTES:
            raise errdefs.InvalidParameter(f"{name} in image archive is too large")
        return data


def _spool_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, directory: str, links: dict[str, str]
) -> None:
    name = clean_member_name(member.name)
    if not name:
        return
    if member.isdir():
        return
    if member.issym() or member.islnk():
        if member.issym():
            if member.linkname.startswith("/"):
                raise errdefs.InvalidParameter(f"absolute link in image archive: {member.name}")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        else:
            target = member.linkname
        links[name] = clean_member_name(target)
        return
    if not member.isreg():
        return  # device nodes, fifos: never part of an image archive; ignore them
    path = os.path.join(directory, name)
    if os.path.lexists(path) or name in links:
        raise errdefs.InvalidParameter(f"duplicate entry in image archive: {member.name}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have data
        return
    written = 0
    with open(path, "wb") as out:
        while True:
            chunk = source.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
    if written != member.size:
        raise errdefs.InvalidParameter(f"truncated entry in image archive: {member.name}")
