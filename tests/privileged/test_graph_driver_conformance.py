"""The one conformance suite every graph driver passes (overlay and vfs), on the real kernel.

Each test gets its own store under a ``sampan-test-<random>`` temp dir; a finalizer unmounts
anything left below it and removes it, pass or fail.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_graph_storage_helpers import (
    BUSYBOX_DIFF_ID,
    DEBIAN_DIFF_ID,
    IMAGES,
    archive_layer,
    directory,
    entry,
    file,
    hardlink,
    image_tree,
    make_tar,
    mounted,
    mounts_below,
    snapshot,
    symlink,
    umount,
)

from sampan import errdefs
from sampan.drivers.graph import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change, LayerStore

pytestmark = pytest.mark.privileged

DRIVERS = ["overlay", "vfs"]


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sampan-test-")
    try:
        yield path
    finally:
        for point in sorted(mounts_below(path), reverse=True):
            umount(point)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=DRIVERS)
def store(request: pytest.FixtureRequest, workdir: str) -> Iterator[LayerStore]:
    layer_store = LayerStore(os.path.join(workdir, "store"), request.param)
    assert layer_store.driver_name == request.param
    try:
        yield layer_store
    finally:
        layer_store.close()


def _view(store: LayerStore, chain_id: str | None) -> dict[str, tuple[Any, ...]]:
    return image_tree(store, chain_id, os.path.join(os.path.dirname(store.root), "view"))


def _staging_is_empty(store: LayerStore) -> bool:
    staging = os.path.join(store.root, store.driver_name, "staging")
    return os.listdir(staging) == []


def _layer_dirs(store: LayerStore) -> set[str]:
    if store.driver_name == "overlay":
        base = os.path.join(store.root, "overlay")
        return {n for n in os.listdir(base) if n not in ("l", "staging")}
    return set(os.listdir(os.path.join(store.root, "vfs", "dir")))


# -- real images ------------------------------------------------------------------------------


def test_register_busybox_layer_from_docker_archive(store: LayerStore) -> None:
    with tarfile.open(os.path.join(IMAGES, "busybox.tar")) as archive:
        layer = store.register(archive_layer(archive), None)
    assert layer.diff_id == BUSYBOX_DIFF_ID
    assert layer.chain_id == BUSYBOX_DIFF_ID
    assert layer.size == 2140160
    assert store.get(layer.chain_id) == layer
    tree = _view(store, layer.chain_id)
    kind, mode, *_ = tree["/bin/busybox"]
    assert kind == stat.S_IFREG and mode & 0o111
    assert tree["/bin/sh"][0] == stat.S_IFLNK and tree["/bin/sh"][4] == "busybox"
    assert tree["/etc/passwd"][0] == stat.S_IFREG
    assert 0 < store.layer_size(layer.chain_id) <= layer.size


def test_debian_layer_matches_its_tar_entry_by_entry(store: LayerStore, workdir: str) -> None:
    with tarfile.open(os.path.join(IMAGES, "debian.tar.gz"), "r:gz") as archive:
        layer = store.register(archive_layer(archive), None)
    assert layer.diff_id == DEBIAN_DIFF_ID
    with tarfile.open(fileobj=store.diff_tar(layer.chain_id), mode="r|") as tar:
        expected = {}
        links = []
        for member in tar:
            name = "/" + os.path.normpath(member.name).lstrip("./")
            if member.islnk():
                links.append((name, "/" + os.path.normpath(member.linkname)))
                continue
            expected[name] = member
    tree = _view(store, layer.chain_id)
    expected.pop("/", None)
    assert set(tree) >= set(expected)
    setuid = 0
    for name, member in expected.items():
        kind, mode, uid, gid, detail, *_ = tree[name]
        assert (mode, uid, gid) == (member.mode & 0o7777, member.uid, member.gid), name
        if member.isreg():
            assert kind == stat.S_IFREG
            setuid += bool(mode & stat.S_ISUID)
        elif member.issym():
            assert (kind, detail) == (stat.S_IFLNK, member.linkname), name
        elif member.isdir():
            assert kind == stat.S_IFDIR, name
    assert setuid >= 3  # su, passwd, mount ... keep their setuid bit
    assert links, "the base layer has hard links"
    container = "hardlinks"
    store.create_rw(container, layer.chain_id)
    try:
        with mounted(store, container, os.path.join(workdir, "mnt")) as root:
            for name, target in links:
                assert os.lstat(root + name).st_ino == os.lstat(root + target).st_ino
    finally:
        store.remove_rw(container)


def test_diff_tar_is_byte_identical_to_the_registered_tar(store: LayerStore) -> None:
    with tarfile.open(os.path.join(IMAGES, "busybox.tar")) as archive:
        original = archive_layer(archive).read()
    layer = store.register(io.BytesIO(original), None)
    with store.diff_tar(layer.chain_id) as saved:
        assert saved.read() == original


# -- chains, whiteouts, opaque directories ----------------------------------------------------

BASE = make_tar(
    directory("a"),
    file("a/f1", b"one"),
    file("a/f2", b"two"),
    directory("b"),
    file("b/x", b"x"),
    directory("b/sub"),
    file("b/sub/y", b"y"),
    file("c", b"c"),
    directory("d"),
    file("d/old", b"old"),
    symlink("lnk", "a/f1"),
    file("suid", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0),
    file("owned", b"o", uid=1234, gid=4321, mode=0o640),
)
TOP = make_tar(
    file(".wh.c"),
    file("a/.wh.f1"),
    directory("b"),
    file("b/.wh..wh..opq"),
    file("b/new", b"new"),
    file("d/.wh..wh..opq"),
    directory("e"),
    file("e/z", b"z"),
    file(".wh.lnk"),
    file("a/f2", b"two, changed"),
)
EXPECTED_AFTER_TOP = {
    "/a": "dir",
    "/a/f2": b"two, changed",
    "/b": "dir",
    "/b/new": b"new",
    "/d": "dir",
    "/e": "dir",
    "/e/z": b"z",
    "/suid": b"#!/bin/sh\n",
    "/owned": b"o",
}


def _contents(tree: dict[str, tuple[Any, ...]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for path, (kind, _mode, _uid, _gid, detail, *_rest) in tree.items():
        if kind == stat.S_IFDIR:
            result[path] = "dir"
        elif kind == stat.S_IFREG:
            result[path] = detail
        else:
            result[path] = ("other", kind, detail)
    return result


def _hashed(expected: dict[str, object]) -> dict[str, object]:
    return {
        k: hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else v
        for k, v in expected.items()
    }


def test_whiteouts_and_opaque_dirs_give_the_same_tree_on_every_driver(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    base_tree = _view(store, base.chain_id)
    assert base_tree["/suid"][1] == 0o4755
    assert base_tree["/owned"][1:4] == (0o640, 1234, 4321)
    assert base_tree["/lnk"][4] == "a/f1"
    top = store.register(io.BytesIO(TOP), base.chain_id)
    assert top.parent == base.chain_id
    assert _contents(_view(store, top.chain_id)) == _hashed(EXPECTED_AFTER_TOP)
    # A third layer re-creating what the second one deleted.
    third = store.register(io.BytesIO(make_tar(file("c", b"again"), file("b/x", b"x2"))),
                           top.chain_id)
    expected = dict(EXPECTED_AFTER_TOP, **{"/c": b"again", "/b/x": b"x2"})
    assert _contents(_view(store, third.chain_id)) == _hashed(expected)


def test_overlay_whiteouts_are_char_devices_and_opaque_dirs_carry_the_xattr(
    store: LayerStore,
) -> None:
    base = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), base.chain_id)
    layer_dir = store.layer_dir(top.chain_id)
    if store.driver_name == "overlay":
        st = os.lstat(os.path.join(layer_dir, "c"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert os.getxattr(os.path.join(layer_dir, "b"), "trusted.overlay.opaque") == b"y"
        assert os.getxattr(os.path.join(layer_dir, "d"), "trusted.overlay.opaque") == b"y"
        assert not os.path.lexists(os.path.join(layer_dir, "b", "x"))
    else:
        assert not os.path.lexists(os.path.join(layer_dir, "c"))
        assert sorted(os.listdir(os.path.join(layer_dir, "b"))) == ["new"]
        assert os.listdir(os.path.join(layer_dir, "d")) == []


def test_chain_id_follows_docker_and_registering_twice_unpacks_once(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), base.chain_id)
    diff_id = "sha256:" + hashlib.sha256(TOP).hexdigest()
    chain = "sha256:" + hashlib.sha256(f"{base.chain_id} {diff_id}".encode()).hexdigest()
    assert (top.diff_id, top.chain_id) == (diff_id, chain)
    dirs_before = _layer_dirs(store)
    again = store.register(io.BytesIO(TOP), base.chain_id)
    assert again == top
    assert _layer_dirs(store) == dirs_before
    assert store.refcount(top.chain_id) == 2
    assert store.refcount(base.chain_id) == 2  # the caller's + the child's
    with pytest.raises(errdefs.NotFound):
        store.register(io.BytesIO(TOP), "sha256:" + "0" * 64)
    with pytest.raises(errdefs.InvalidParameter):
        store.register(io.BytesIO(TOP), base.chain_id, expected_diff_id="sha256:" + "1" * 64)
    assert store.refcount(top.chain_id) == 2


def test_release_removes_layers_at_zero_and_then_their_parents(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), base.chain_id)
    store.register(io.BytesIO(TOP), base.chain_id)  # second reference on top
    assert store.release(base.chain_id) == []  # the image store keeps only the top reference
    assert store.release(top.chain_id) == []
    assert store.exists(top.chain_id)
    removed = store.release(top.chain_id)
    assert [layer.chain_id for layer in removed] == [top.chain_id, base.chain_id]
    assert store.list() == []
    assert _layer_dirs(store) == set()
    with pytest.raises(errdefs.NotFound):
        store.get(top.chain_id)
    with pytest.raises(errdefs.NotFound):
        store.diff_tar(top.chain_id)
    with pytest.raises(errdefs.NotFound):
        store.release(top.chain_id)


# -- hostile and broken tars ------------------------------------------------------------------


def _hostile_cases(outside: str) -> dict[str, bytes]:
    up = "../" * 20
    secret = os.path.join(outside, "secret")
    header = tarfile.TarInfo("huge")
    header.size = 1 << 40  # a terabyte announced, a few blocks delivered
    huge_tar = header.tobuf(tarfile.PAX_FORMAT) + b"\0" * 1024
    truncated = make_tar(file("f", b"z" * 100_000))[:20_000]
    long_escape = "a/" * 60 + "../" * 61 + up + outside.lstrip("/") + "/pwned"
    overlay_xattr = entry("forged", tarfile.DIRTYPE, mode=0o755)
    overlay_xattr.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    return {
        "dotdot": make_tar(file("../pwned", b"x")),
        "dotdot-deep": make_tar(file(up + outside.lstrip("/") + "/pwned", b"x")),
        "dotdot-inside-path": make_tar(file("a/../../pwned", b"x")),
        "pax-long-name-escape": make_tar(file(long_escape, b"x")),
        "symlink-abs-then-write": make_tar(symlink("evil", outside), file("evil/pwned", b"x")),
        "symlink-rel-then-write": make_tar(
            symlink("evil", up + outside.lstrip("/")), file("evil/pwned", b"x")
        ),
        "symlink-chain-then-write": make_tar(
            symlink("a", "b"), symlink("b", outside), file("a/pwned", b"x")
        ),
        "symlink-then-dir": make_tar(symlink("evil", outside), directory("evil/sub")),
        "symlink-then-hardlink-into": make_tar(
            file("f", b"x"), symlink("evil", outside), hardlink("evil/pwned", "f")
        ),
        "hardlink-absolute-outside": make_tar(hardlink("hl", secret)),
        "hardlink-dotdot-outside": make_tar(hardlink("hl", up + secret.lstrip("/"))),
        "hardlink-through-symlink": make_tar(symlink("s", outside), hardlink("hl", "s/secret")),
        "whiteout-dotdot": make_tar(file("../.wh.secret")),
        "whiteout-through-symlink": make_tar(symlink("s", outside), file("s/.wh.secret")),
        "opaque-through-symlink": make_tar(symlink("s", outside), file("s/.wh..wh..opq")),
        "char-device": make_tar(entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3)),
        "block-device": make_tar(entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)),
        "truncated-data": truncated,
        "huge-size-field": huge_tar,
        "not-a-tar": b"this is not a tar archive at all" * 40,
        "bad-checksum": make_tar(file("f", b"x"))[:148] + b"0000000\0" + make_tar(
            file("f", b"x"))[156:],
        "overlay-xattr-forgery-then-escape": make_tar(overlay_xattr, file("../pwned", b"x")),
    }


HOSTILE = list(_hostile_cases("/OUTSIDE"))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tar_is_refused_and_writes_nothing_outside(
    store: LayerStore, workdir: str, case: str
) -> None:
    outside = os.path.join(workdir, "outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("secret")
    before_outside = snapshot(outside)
    base = store.register(io.BytesIO(BASE), None)
    layers_before = store.list()
    dirs_before = _layer_dirs(store)
    with pytest.raises(errdefs.InvalidParameter) as error:
        store.register(io.BytesIO(_hostile_cases(outside)[case]), base.chain_id)
    assert str(error.value)  # a message that says what is wrong
    assert snapshot(outside) == before_outside
    assert os.stat(os.path.join(outside, "secret")).st_nlink == 1
    assert not os.path.lexists(os.path.join(workdir, "pwned"))
    assert not os.path.lexists(os.path.join(store.root, "pwned"))
    assert store.list() == layers_before
    assert _layer_dirs(store) == dirs_before
    assert _staging_is_empty(store)
    assert os.listdir(os.path.join(store.root, "diffs", "ingest")) == []


def test_absolute_names_land_inside_and_later_entries_replace_symlinks(
    store: LayerStore, workdir: str
) -> None:
    outside = os.path.join(workdir, "outside")
    os.mkdir(outside)
    secret = os.path.join(outside, "secret")
    with open(secret, "w") as f:
        f.write("secret")
    tar = make_tar(
        file(outside + "/abs", b"inside"),
        symlink("f", secret),
        file("f", b"replaced"),  # must replace the symlink, not write through it
        file("dup", b"first"),
        file("dup", b"second"),
        file("g", b"g"),
        hardlink("hl", "g"),
    )
    layer = store.register(io.BytesIO(tar), None)
    with open(secret) as f:
        assert f.read() == "secret"
    assert not os.path.exists(os.path.join(outside, "abs"))
    tree = _contents(_view(store, layer.chain_id))
    assert tree[outside + "/abs"] == hashlib.sha256(b"inside").hexdigest()
    assert tree["/f"] == hashlib.sha256(b"replaced").hexdigest()
    assert tree["/dup"] == hashlib.sha256(b"second").hexdigest()
    assert tree["/hl"] == tree["/g"]


def test_forged_overlay_xattrs_in_a_tar_are_ignored(store: LayerStore) -> None:
    forged = entry("d", tarfile.DIRTYPE, mode=0o755)
    forged.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    base = store.register(io.BytesIO(make_tar(directory("d"), file("d/keep", b"k"))), None)
    top = store.register(io.BytesIO(make_tar(forged)), base.chain_id)
    assert "/d/keep" in _view(store, top.chain_id)


# -- crash safety -----------------------------------------------------------------------------


class _Exploding(io.RawIOBase):
    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._limit:
            raise RuntimeError("disk on fire")
        return self._data.read(min(size if size >= 0 else self._limit, 4096))


def test_exception_mid_unpack_leaves_no_layer(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    data = make_tar(*(file(f"f{i}", os.urandom(2048)) for i in range(50)))
    dirs_before = _layer_dirs(store)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.register(_Exploding(data, len(data) // 2), base.chain_id)  # type: ignore[arg-type]
    assert [layer.chain_id for layer in store.list()] == [base.chain_id]
    assert _layer_dirs(store) == dirs_before
    assert _staging_is_empty(store)
    assert os.listdir(os.path.join(store.root, "diffs", "ingest")) == []
    layer = store.register(io.BytesIO(data), base.chain_id)
    assert store.exists(layer.chain_id)


_KILLED_CHILD = """
import sys, time
from sampan.drivers.graph import LayerStore
store = LayerStore(sys.argv[1], sys.argv[2])
class Slow:
    def __init__(self, f): self.f = f
    def read(self, n=-1):
        time.sleep(0.002)
        return self.f.read(min(n, 65536) if n and n > 0 else 65536)
with open(sys.argv[3], "rb") as f:
    store.register(Slow(f), None)
print("finished")
"""


def test_killed_mid_register_leaves_nothing_and_register_works_again(
    store: LayerStore, workdir: str
) -> None:
    driver = store.driver_name
    store.close()
    layer_tar = os.path.join(workdir, "debian-layer.tar")
    with tarfile.open(os.path.join(IMAGES, "debian.tar.gz"), "r:gz") as archive, open(
        layer_tar, "wb"
    ) as out:
        shutil.copyfileobj(archive_layer(archive), out)
    staging = os.path.join(store.root, driver, "staging")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, store.root, driver, layer_tar],
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "../../src")),
    )
    try:
        deadline = time.monotonic() + 60
        while not os.listdir(staging) or not os.listdir(os.path.join(store.root, "diffs/ingest")):
            assert child.poll() is None, "the child finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    reopened = LayerStore(store.root, "auto")
    try:
        assert reopened.driver_name == driver
        assert reopened.list() == []
        assert _staging_is_empty(reopened)
        assert os.listdir(os.path.join(store.root, "diffs", "ingest")) == []
        with open(layer_tar, "rb") as f:
            layer = reopened.register(f, None)
        assert layer.diff_id == DEBIAN_DIFF_ID
    finally:
        reopened.close()


# -- container read-write layers --------------------------------------------------------------


def test_rw_layer_changes_export_and_commit_round_trip(store: LayerStore, workdir: str) -> None:
    base = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), base.chain_id)
    container = "sampan-test-ctr"
    mounts = store.create_rw(container, top.chain_id)
    assert mounts == store.rw_mounts(container)
    if store.driver_name == "overlay":
        assert mounts[0].type == "overlay"
        assert {o.split("=")[0] for o in mounts[0].options} >= {"lowerdir", "upperdir", "workdir"}
    else:
        assert (mounts[0].type, mounts[0].options) == ("bind", ["rbind", "rw"])
    assert store.refcount(top.chain_id) == 2
    with pytest.raises(errdefs.Conflict):
        store.create_rw(container, top.chain_id)
    target = os.path.join(workdir, "rootfs")
    with mounted(store, container, target) as root:
        with open(f"{root}/a/f2", "w") as f:
            f.write("changed by the container")
        os.unlink(f"{root}/suid")
        shutil.rmtree(f"{root}/e")
        os.makedirs(f"{root}/new/deep")
        with open(f"{root}/new/deep/file", "w") as f:
            f.write("added")
        os.chmod(f"{root}/owned", 0o600)
        container_tree = snapshot(root)
    assert store.changes(container) == [
        Change("/a", CHANGE_MODIFY),
        Change("/a/f2", CHANGE_MODIFY),
        Change("/e", CHANGE_DELETE),
        Change("/new", CHANGE_ADD),
        Change("/new/deep", CHANGE_ADD),
        Change("/new/deep/file", CHANGE_ADD),
        Change("/owned", CHANGE_MODIFY),
        Change("/suid", CHANGE_DELETE),
    ]
    assert store.rw_size(container) >= len("changed by the container") + len("added")
    with store.export_rw(container) as exported, tarfile.open(fileobj=exported) as tar:
        names = {"/" + m.name.rstrip("/") for m in tar.getmembers()}
        assert names == set(container_tree)
        data = tar.extractfile("a/f2")
        assert data is not None and data.read() == b"changed by the container"
    with store.diff_rw(container) as diff:
        diff_bytes = diff.read()
    with tarfile.open(fileobj=io.BytesIO(diff_bytes)) as tar:
        diff_names = set(tar.getnames())
    assert {".wh.suid", ".wh.e", "new/deep/file", "a/f2"} <= diff_names
    committed = store.register(io.BytesIO(diff_bytes), top.chain_id)
    committed_tree = _view(store, committed.chain_id)
    strip = {k: v[:5] for k, v in container_tree.items()}
    assert {k: v[:5] for k, v in committed_tree.items()} == strip
    store.remove_rw(container)
    assert store.refcount(top.chain_id) == 2  # the caller's + the committed child's
    with pytest.raises(errdefs.NotFound):
        store.rw_mounts(container)
    with pytest.raises(errdefs.NotFound):
        store.changes(container)


def test_rw_layer_without_image_starts_empty(store: LayerStore, workdir: str) -> None:
    container = "scratch"
    store.create_rw(container, None)
    try:
        with mounted(store, container, os.path.join(workdir, "rootfs")) as root:
            assert os.listdir(root) == []
            with open(f"{root}/hello", "w") as f:
                f.write("hi")
        assert store.changes(container) == [Change("/hello", CHANGE_ADD)]
        with store.export_rw(container) as exported, tarfile.open(fileobj=exported) as tar:
            assert tar.getnames() == ["hello"]
    finally:
        store.remove_rw(container)
    assert store.list_rw() == []


def test_remove_rw_releases_the_image_it_held(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    store.create_rw("holder", base.chain_id)
    assert store.release(base.chain_id) == []  # the container still holds it
    assert store.exists(base.chain_id)
    store.remove_rw("holder")
    assert not store.exists(base.chain_id)
    assert _layer_dirs(store) == set()


def test_metadata_long_names_xattrs_and_fifos_survive_unpack(store: LayerStore) -> None:
    long_name = "/".join(["d" * 60] * 5) + "/" + "f" * 120  # beyond ustar's 255: PAX path
    with_xattrs = entry("caps", mode=0o755, mtime=1_600_000_000)
    with_xattrs.pax_headers = {
        "SCHILY.xattr.user.comment": "hello",
        # cap_net_bind_service, as setcap writes it (vfs_cap_data revision 2)
        "SCHILY.xattr.security.capability": (
            b"\x01\x00\x00\x02\x00\x04\x00\x00" + b"\x00" * 12
        ).decode("utf-8", "surrogateescape"),
    }
    pax_size = entry("paxsize", mtime=1_600_000_001)
    pax_size.pax_headers = {"size": "5"}
    tar = make_tar(
        file(long_name, b"long"),
        (with_xattrs, b"#!/bin/sh\n"),
        (pax_size, b"12345"),
        entry("fifo", tarfile.FIFOTYPE, mode=0o620, uid=7, gid=8),
        directory("dated", mtime=1_234_567_890),
        file("dated/inside", b"x"),
    )
    layer = store.register(io.BytesIO(tar), None)
    root = store.layer_dir(layer.chain_id)
    with open(os.path.join(root, long_name), "rb") as f:
        assert f.read() == b"long"
    caps = os.path.join(root, "caps")
    assert os.getxattr(caps, "user.comment") == b"hello"
    assert os.getxattr(caps, "security.capability")[:4] == b"\x01\x00\x00\x02"
    assert os.lstat(caps).st_mtime == 1_600_000_000
    with open(os.path.join(root, "paxsize"), "rb") as f:
        assert f.read() == b"12345"
    fifo = os.lstat(os.path.join(root, "fifo"))
    assert stat.S_ISFIFO(fifo.st_mode) and (fifo.st_uid, fifo.st_gid) == (7, 8)
    assert stat.S_IMODE(fifo.st_mode) == 0o620
    assert os.lstat(os.path.join(root, "dated")).st_mtime == 1_234_567_890
