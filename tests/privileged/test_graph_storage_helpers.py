"""Helpers shared by the graph storage tests: tar building, mounting described mounts, tree
snapshots. This module holds no tests."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sampan.drivers.graph import LayerStore, Mount

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
IMAGES = _SHARED_IMAGES
BUSYBOX_DIFF_ID = "sha256:0a9f49b392c48b8ae37cde4b855c60a03851fa160081a7e2ccc6923b366c327f"
DEBIAN_DIFF_ID = "sha256:9ea9fef3a929345c829cfab612773756f7d185adab7a1bbc4e55fc650270fd3f"


def archive_layer(archive: tarfile.TarFile, index: int = 0) -> tarfile.ExFileObject:
    """The ``index``-th layer tar of a docker-archive, as a stream."""
    manifest_file = archive.extractfile("manifest.json")
    assert manifest_file is not None
    manifest: list[dict[str, Any]] = json.load(manifest_file)
    name = manifest[0]["Layers"][index]
    member = archive.getmember(name)
    if member.issym():  # skopeo writes <id>/layer.tar -> ../<diff id>.tar
        name = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
    stream = archive.extractfile(name)
    assert stream is not None
    return stream


def make_tar(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                info, data = entry
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(entry)
    return out.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def file(name: str, data: bytes = b"", **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, **fields), data


def directory(name: str, **fields: Any) -> tarfile.TarInfo:
    return entry(name, tarfile.DIRTYPE, **fields)


def symlink(name: str, target: str) -> tarfile.TarInfo:
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    return entry(name, tarfile.LNKTYPE, linkname=target)


def do_mount(mount: Mount, target: str) -> None:
    if mount.type == "overlay":
        command = ["mount", "-t", "overlay", mount.source, "-o", ",".join(mount.options), target]
    else:
        assert mount.type == "bind" and "rbind" in mount.options
        command = ["mount", "--rbind", mount.source, target]
    subprocess.run(command, check=True, capture_output=True)


def umount(target: str) -> None:
    subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def mounts_below(path: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return found


@contextlib.contextmanager
def mounted(store: LayerStore, container_id: str, where: str) -> Iterator[str]:
    """Mount the container's described mounts at ``where`` (as the runtime would)."""
    os.makedirs(where, exist_ok=True)
    mounts = store.rw_mounts(container_id)
    assert len(mounts) == 1
    do_mount(mounts[0], where)
    try:
        yield where
    finally:
        umount(where)


def snapshot(root: str, file_mtimes: bool = True) -> dict[str, tuple[Any, ...]]:
    """Path -> (type, mode, uid, gid, content hash | link target | rdev, [mtime s])."""
    tree: dict[str, tuple[Any, ...]] = {}
    for dir_path, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dir_path, name)
            st = os.lstat(path)
            rel = "/" + os.path.relpath(path, root)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail: Any = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                detail = None
            else:
                detail = st.st_rdev
            record: tuple[Any, ...] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail)
            if file_mtimes and not stat.S_ISDIR(st.st_mode):
                record += (int(st.st_mtime),)
            tree[rel] = record
    return tree


def image_tree(store: LayerStore, chain_id: str | None, where: str) -> dict[str, tuple[Any, ...]]:
    """Snapshot of an image as a container would see it (through a throwaway rw layer)."""
    container = "view-" + os.urandom(4).hex()
    store.create_rw(container, chain_id)
    try:
        with mounted(store, container, where) as root:
            return snapshot(root)
    finally:
        store.remove_rw(container)
