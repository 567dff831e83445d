"""Content store and pure layer-store logic (no root needed)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from sampan import errdefs
from sampan.drivers.graph import ContentStore, chain_id_of
from sampan.drivers.graph.unpack import clean_name


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_ingest_stores_blob_under_its_digest(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    digest = store.ingest(io.BytesIO(b"hello"), expected=_digest(b"hello"), size=5)
    assert digest == _digest(b"hello")
    assert store.has(digest)
    assert store.size(digest) == 5
    assert store.path(digest).endswith("/blobs/sha256/" + digest[7:])
    with store.open(digest) as blob:
        assert blob.read() == b"hello"
    assert store.list() == [digest]


def test_digest_mismatch_leaves_nothing_behind(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    with pytest.raises(errdefs.InvalidParameter, match="digest mismatch"):
        store.ingest(io.BytesIO(b"evil"), expected=_digest(b"good"))
    assert store.list() == []
    assert os.listdir(store.ingest_dir) == []


def test_size_mismatch_is_refused(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    with pytest.raises(errdefs.InvalidParameter, match="size mismatch"):
        store.ingest(io.BytesIO(b"12345"), size=4)
    with pytest.raises(errdefs.InvalidParameter, match="size mismatch"):
        store.ingest(io.BytesIO(b"123"), size=4)
    assert store.list() == []
    assert os.listdir(store.ingest_dir) == []


def test_missing_blob_and_bad_digest_are_typed_errors(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    missing = _digest(b"absent")
    with pytest.raises(errdefs.NotFound):
        store.open(missing)
    with pytest.raises(errdefs.NotFound):
        store.size(missing)
    with pytest.raises(errdefs.NotFound):
        store.delete(missing)
    with pytest.raises(errdefs.InvalidParameter):
        store.path("sha256:../../etc/passwd")
    assert not store.has(missing)


def test_ingest_bytes_and_delete(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    digest = store.ingest_bytes(b"{}")
    assert store.ingest_bytes(b"{}", expected=digest) == digest
    store.delete(digest)
    assert store.list() == []


def test_stale_ingest_files_of_dead_writers_are_removed_on_open(tmp_path: str) -> None:
    store = ContentStore(str(tmp_path))
    stale = os.path.join(store.ingest_dir, "999999999-deadbeef")
    with open(stale, "wb") as f:
        f.write(b"half a blob")
    ContentStore(str(tmp_path))
    assert not os.path.exists(stale)


def test_chain_id_is_docker_s() -> None:
    base = _digest(b"base")
    top = _digest(b"top")
    assert chain_id_of(None, base) == base
    assert chain_id_of(base, top) == _digest(f"{base} {top}".encode())


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("./etc/passwd", ["etc", "passwd"]),
        ("/etc//passwd", ["etc", "passwd"]),
        ("a/b/../c", ["a", "c"]),
        ("./", []),
        ("dir/", ["dir"]),
    ],
)
def test_clean_name_keeps_paths_below_the_root(name: str, parts: list[str]) -> None:
    assert clean_name(name) == parts


@pytest.mark.parametrize("name", ["../x", "a/../../x", "./../x", "a\x00b"])
def test_clean_name_refuses_escapes(name: str) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        clean_name(name)
