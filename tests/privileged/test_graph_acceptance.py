"""Acceptance checks of issue 3 that need root but no reference engine.

* A container root prepared from ``nginx:bookworm`` (overlay, mounted the way the runtime
  mounts the described mounts) shows exactly what its layer tars say, entry by entry: type,
  mode with setuid/setgid/sticky bits, owner, symlink target, size, hardlinks, whiteouts.
* Layers that delete files and directories and make directories opaque give identical trees
  on the overlay and the vfs driver (and the tree the OCI image spec prescribes).
* The hostile corpus of the conformance suite is refused just the same when the layer tar is
  a regular file (the layer store's other input path: headers read by seeking, contents
  copied by the kernel, the diff copied by a second thread).

Everything lives under a ``sampan-test-<random>`` directory; a finalizer unmounts what is
left below it and removes it, pass or fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from test_graph_driver_conformance import HOSTILE, _hostile_cases
from test_graph_storage_helpers import (
    IMAGES,
    directory,
    file,
    image_tree,
    make_tar,
    mounted,
    mounts_below,
    snapshot,
    symlink,
    umount,
)

from sampan import errdefs
from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.images import ImageStore

pytestmark = pytest.mark.privileged

NGINX_ID = "sha256:79d2c269937ff87dda28de3027bc331ee16a8ad157df3a86d58168f0b290742b"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sampan-test-", dir="/var/tmp")
    try:
        yield path
    finally:
        for point in sorted(mounts_below(path), reverse=True):
            umount(point)
        shutil.rmtree(path, ignore_errors=True)


# -- a model of the merged tree, computed from the layer tars alone ---------------------------

Entry = tuple[Any, ...]  # (kind, mode, uid, gid, detail): detail = size | link target | None


def _clean(name: str) -> list[str]:
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            parts.pop()
            continue
        parts.append(part)
    return parts


def _drop(model: dict[str, Entry], path: str, keep: set[str] | None = None) -> None:
    """Remove ``path``'s descendants (not in ``keep``) and, when ``keep`` is None, ``path``."""
    prefix = path.rstrip("/") + "/"
    for name in [n for n in model if n.startswith(prefix)]:
        if keep is None or name not in keep:
            del model[name]
    if keep is None:
        model.pop(path, None)


def apply_layer_tar(
    model: dict[str, Entry], links: dict[str, str], tar: tarfile.TarFile
) -> None:
    """Apply one layer tar to ``model`` as the OCI image spec describes ("Applying Changesets":
    entries replace what is below them, ``.wh.<name>`` deletes ``<name>`` and everything under
    it, ``.wh..wh..opq`` hides every lower child of its directory)."""
    written: set[str] = set()
    for member in tar:
        parts = _clean(member.name)
        if not parts:
            continue
        path = "/" + "/".join(parts)
        parent = path.rsplit("/", 1)[0] or "/"
        base = parts[-1]
        if base == OPAQUE:
            _drop(model, parent, keep=written)
            continue
        if base.startswith(WHITEOUT):
            _drop(model, os.path.join(parent, base[len(WHITEOUT) :]))
            continue
        if member.isdir():
            if model.get(path, ("",))[0] != "dir":
                _drop(model, path)
            model[path] = ("dir", member.mode & 0o7777, member.uid, member.gid, None)
        else:
            _drop(model, path)
            if member.islnk():
                target = "/" + "/".join(_clean(member.linkname))
                model[path] = model[target]
                links[path] = target
            elif member.isreg():
                model[path] = ("reg", member.mode & 0o7777, member.uid, member.gid, member.size)
            elif member.issym():
                model[path] = ("sym", None, member.uid, member.gid, member.linkname)
            elif member.isfifo():
                model[path] = ("fifo", member.mode & 0o7777, member.uid, member.gid, None)
            else:
                raise AssertionError(f"unexpected entry type {member.type!r} in {member.name}")
        written.add(path)
        for i in range(1, len(parts)):
            written.add("/" + "/".join(parts[:i]))


def merged_view(root: str) -> dict[str, Entry]:
    """The same shape as the model, read from the mounted container root."""
    view: dict[str, Entry] = {}
    for dir_path, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dir_path, name)
            st = os.lstat(path)
            rel = "/" + os.path.relpath(path, root)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                view[rel] = ("dir", mode, st.st_uid, st.st_gid, None)
            elif stat.S_ISREG(st.st_mode):
                view[rel] = ("reg", mode, st.st_uid, st.st_gid, st.st_size)
            elif stat.S_ISLNK(st.st_mode):
                view[rel] = ("sym", None, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISFIFO(st.st_mode):
                view[rel] = ("fifo", mode, st.st_uid, st.st_gid, None)
            else:
                view[rel] = ("other", mode, st.st_uid, st.st_gid, st.st_rdev)
    return view


def _special_bits(tree: dict[str, Entry]) -> dict[str, int]:
    return {
        path: entry[1] & 0o7000
        for path, entry in tree.items()
        if entry[1] is not None and entry[1] & 0o7000
    }


def test_nginx_container_root_matches_its_layer_tars_entry_by_entry(workdir: str) -> None:
    root = os.path.join(workdir, "nginx")
    layers = LayerStore(os.path.join(root, "layers"), "overlay")
    content = ContentStore(os.path.join(root, "content"))
    images = ImageStore(os.path.join(root, "images"), layers, content)
    container = "sampan-test-nginx-root"
    try:
        assert images.load(os.path.join(IMAGES, "nginx.tar.gz")) == ["nginx:bookworm"]
        image_id = images.resolve("nginx:bookworm")
        assert image_id == NGINX_ID
        chain = images.chain_ids(image_id)
        assert len(chain) == 2
        model: dict[str, Entry] = {}
        links: dict[str, str] = {}
        for chain_id in chain:
            with layers.diff_tar(chain_id) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                apply_layer_tar(model, links, tar)

        top = images.top_chain_id(image_id)
        mounts = layers.create_rw(container, top)
        assert [m.type for m in mounts] == ["overlay"]
        with mounted(layers, container, os.path.join(root, "rootfs")) as rootfs:
            view = merged_view(rootfs)
            inodes = {path: os.lstat(rootfs + path).st_ino for path in links}
            link_targets = {path: os.lstat(rootfs + t).st_ino for path, t in links.items()}
            with open(os.path.join(rootfs, "usr/sbin/nginx"), "rb") as f:
                assert f.read(4) == b"\x7fELF"

        missing = sorted(set(model) - set(view))
        extra = sorted(set(view) - set(model))
        assert not missing, f"{len(missing)} layer entries not in the root: {missing[:20]}"
        assert not extra, f"{len(extra)} entries in the root from no layer: {extra[:20]}"
        wrong = [(p, model[p], view[p]) for p in sorted(model) if model[p] != view[p]]
        assert not wrong, f"{len(wrong)} entries differ (path, layers, root): {wrong[:20]}"

        # The checks above cover every entry; these say the image exercises what matters.
        assert len(view) > 4000
        specials = _special_bits(view)
        assert specials == _special_bits(model)
        setuid = {p for p, bits in specials.items() if bits & stat.S_ISUID}
        assert {"/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount"} <= setuid
        assert view["/tmp"][1] == 0o1777
        assert view["/usr/sbin/nginx"][:4] == ("reg", 0o755, 0, 0)
        symlinks = [p for p, e in view.items() if e[0] == "sym"]
        assert len(symlinks) > 100 and view["/bin"] == ("sym", None, 0, 0, "usr/bin")
        assert links and inodes == link_targets  # hardlinks stay hardlinks
        assert any(e[2] != 0 or e[3] != 0 for e in view.values())  # non-root owners kept
    finally:
        for point in sorted(mounts_below(root), reverse=True):
            umount(point)
        if container in layers.list_rw():
            layers.remove_rw(container)
        images.close()
        layers.close()


# -- whiteouts and opaque directories: overlay and vfs give identical trees --------------------

LOWER = make_tar(
    directory("keep"),
    file("keep/a", b"a"),
    file("keep/b", b"b"),
    directory("gone_dir", mode=0o750),
    file("gone_dir/x", b"x"),
    directory("gone_dir/sub"),
    file("gone_dir/sub/y", b"y"),
    directory("opaque_dir"),
    file("opaque_dir/old", b"old"),
    directory("opaque_dir/old_sub"),
    file("opaque_dir/old_sub/z", b"z"),
    file("file_del", b"deleted later"),
    symlink("link_del", "file_del"),
    directory("dir_to_file"),
    file("dir_to_file/child", b"c"),
    file("file_to_dir", b"f"),
    file("suid", b"#!/bin/sh\n", mode=0o4755),
    file("owned", b"o", uid=1234, gid=4321, mode=0o640),
    directory("sticky", mode=0o1777),
    directory("recreated"),
    file("recreated/old", b"old"),
)
MIDDLE = make_tar(
    file(".wh.file_del"),
    file(".wh.link_del"),
    file(".wh.gone_dir"),  # a whole directory with its subtree
    directory("opaque_dir"),
    file("opaque_dir/.wh..wh..opq"),
    file("opaque_dir/new", b"new"),
    file("keep/.wh.a"),
    file("dir_to_file", b"now a file"),
    directory("file_to_dir"),
    file("file_to_dir/inside", b"i"),
    directory("added/deep", mode=0o700),
    file("added/deep/f", b"deep", uid=7, gid=8, mode=0o2750),
    file(".wh.recreated"),  # deleted and made again in the same layer: nothing from below
    directory("recreated", mode=0o700),
    file("recreated/new", b"new"),
)
UPPER = make_tar(
    directory("gone_dir", mode=0o711),  # the deleted directory comes back, empty below
    file("gone_dir/again", b"again"),
    file("opaque_dir/.wh.new"),
    file(".wh.keep"),
    directory("sticky"),
    file("sticky/.wh..wh..opq"),  # opaque over an empty lower dir: nothing to hide
    file("sticky/t", b"t"),
)
EXPECTED = {
    "/added": ("dir", 0o755),
    "/added/deep": ("dir", 0o700),
    "/added/deep/f": ("reg", 0o2750, b"deep"),
    "/dir_to_file": ("reg", 0o644, b"now a file"),
    "/file_to_dir": ("dir", 0o755),
    "/file_to_dir/inside": ("reg", 0o644, b"i"),
    "/gone_dir": ("dir", 0o711),
    "/gone_dir/again": ("reg", 0o644, b"again"),
    "/opaque_dir": ("dir", 0o755),
    "/owned": ("reg", 0o640, b"o"),
    "/recreated": ("dir", 0o700),
    "/recreated/new": ("reg", 0o644, b"new"),
    "/sticky": ("dir", 0o755),
    "/sticky/t": ("reg", 0o644, b"t"),
    "/suid": ("reg", 0o4755, b"#!/bin/sh\n"),
}


def _summary(tree: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for path, (kind, mode, _uid, _gid, detail, *_rest) in tree.items():
        if kind == stat.S_IFDIR:
            out[path] = ("dir", mode)
        elif kind == stat.S_IFREG:
            out[path] = ("reg", mode, detail)
        else:
            out[path] = ("other", kind, mode, detail)
    return out


def _expected() -> dict[str, tuple[Any, ...]]:
    return {
        path: (spec[0], spec[1], hashlib.sha256(spec[2]).hexdigest()) if len(spec) == 3 else spec
        for path, spec in EXPECTED.items()
    }


def test_whiteouts_and_opaque_dirs_give_identical_trees_on_overlay_and_vfs(
    workdir: str,
) -> None:
    trees = {}
    for driver in ("overlay", "vfs"):
        base = os.path.join(workdir, "whiteouts-" + driver)
        store = LayerStore(os.path.join(base, "store"), driver)
        try:
            assert store.driver_name == driver
            lower = store.register(io.BytesIO(LOWER), None)
            middle = store.register(io.BytesIO(MIDDLE), lower.chain_id)
            upper = store.register(io.BytesIO(UPPER), middle.chain_id)
            view = os.path.join(base, "view")
            trees[driver] = {
                "middle": image_tree(store, middle.chain_id, view),
                "upper": image_tree(store, upper.chain_id, view),
            }
            if driver == "overlay":
                own = store.layer_dir(middle.chain_id)
                st = os.lstat(os.path.join(own, "gone_dir"))
                assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # the whiteout itself
                opaque = os.getxattr(os.path.join(own, "opaque_dir"), "trusted.overlay.opaque")
                assert opaque == b"y"
        finally:
            store.close()
    # Full records: type, mode, owner, content hash or link target, file mtimes.
    assert trees["overlay"]["middle"] == trees["vfs"]["middle"]
    assert trees["overlay"]["upper"] == trees["vfs"]["upper"]
    upper = trees["vfs"]["upper"]
    assert _summary(upper) == _expected()
    assert upper["/owned"][2:4] == (1234, 4321)
    assert upper["/added/deep/f"][2:4] == (7, 8)
    middle = _summary(trees["vfs"]["middle"])
    assert "/gone_dir" not in middle and "/gone_dir/sub/y" not in middle
    assert sorted(p for p in middle if p.startswith("/opaque_dir/")) == ["/opaque_dir/new"]
    assert sorted(p for p in middle if p.startswith("/keep/")) == ["/keep/b"]
    assert "/file_del" not in middle and "/link_del" not in middle


# -- hostile tars given as regular files (the copy_file_range path) ---------------------------


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_hostile_tar_files_are_refused_like_streams(workdir: str, driver: str) -> None:
    base_dir = tempfile.mkdtemp(prefix="hostile-files-", dir=workdir)
    outside = os.path.join(base_dir, "outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("secret")
    before_outside = snapshot(outside)
    store = LayerStore(os.path.join(base_dir, "store"), driver)
    try:
        base = store.register(io.BytesIO(LOWER), None)
        layers_before = store.list()
        cases = _hostile_cases(outside)
        assert sorted(cases) == sorted(HOSTILE)
        for case, data in cases.items():
            path = os.path.join(base_dir, case + ".tar")
            with open(path, "wb") as out:
                out.write(data)
            with open(path, "rb") as tar, pytest.raises(errdefs.InvalidParameter) as error:
                store.register(tar, base.chain_id)
            assert str(error.value), case
            assert snapshot(outside) == before_outside, case
            assert os.stat(os.path.join(outside, "secret")).st_nlink == 1, case
            assert not os.path.lexists(os.path.join(base_dir, "pwned")), case
            assert store.list() == layers_before, case
            assert os.listdir(os.path.join(store.root, driver, "staging")) == [], case
            assert os.listdir(os.path.join(store.root, "diffs", "ingest")) == [], case
        # The same path takes a good tar, with the diff id of its bytes.
        path = os.path.join(base_dir, "good.tar")
        with open(path, "wb") as out:
            out.write(MIDDLE)
        with open(path, "rb") as tar:
            layer = store.register(tar, base.chain_id)
        assert layer.diff_id == "sha256:" + hashlib.sha256(MIDDLE).hexdigest()
        with store.diff_tar(layer.chain_id) as kept:
            assert kept.read() == MIDDLE
    finally:
        store.close()
