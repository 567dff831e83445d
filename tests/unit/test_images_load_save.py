"""Loading and saving with an in-memory layer store: formats, round trips, bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from test_images_fakes import (
    APP,
    BASE,
    OTHER,
    ArchiveImage,
    digest,
    docker_archive,
    make_config,
    new_store,
    oci_layout,
    snapshot,
    tar_directory,
)

from sampan import errdefs


def test_legacy_docker_archive_loads_with_its_tags(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image = ArchiveImage([BASE, APP], ["app:1", "registry.local:5000/app:v1"])
    loaded = store.load(io.BytesIO(docker_archive([image])))
    assert loaded == ["app:1", "registry.local:5000/app:v1"]
    info = store.inspect("app:1")
    assert info["Id"] == image.id
    assert info["RepoTags"] == ["app:1", "registry.local:5000/app:v1"]
    assert info["RootFS"]["Layers"] == [digest(BASE), digest(APP)]
    assert store.resolve("registry.local:5000/app:v1") == image.id


def test_docker25_layout_with_gzip_layers_and_gzip_archive_loads(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image = ArchiveImage([BASE, APP], ["app:2"])
    archive = gzip.compress(docker_archive([image], legacy=False, gzip_layers=True))
    assert store.load(io.BytesIO(archive)) == ["app:2"]
    assert store.inspect("app:2")["RootFS"]["Layers"] == [digest(BASE), digest(APP)]


def test_zstd_compressed_archive_loads(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image = ArchiveImage([BASE], ["zs:1"])
    archive = zstandard.ZstdCompressor().compress(docker_archive([image]))
    assert store.load(io.BytesIO(archive)) == ["zs:1"]


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_oci_layout_directory_and_tar_load(tmp_path: Path, compress: str) -> None:
    layout = tmp_path / "layout"
    image = ArchiveImage([BASE, OTHER], ["docker.io/me/tool:3"])
    oci_layout(str(layout), [image], compress=compress)
    store, _, _ = new_store(str(tmp_path / "a"))
    assert store.load(str(layout)) == ["me/tool:3"]
    other, _, _ = new_store(str(tmp_path / "b"))
    assert other.load(io.BytesIO(tar_directory(str(layout)))) == ["me/tool:3"]
    assert other.resolve("me/tool:3") == image.id == store.resolve("me/tool:3")


def test_oci_layout_with_bare_tag_ref_name_loads_untagged(tmp_path: Path) -> None:
    image = ArchiveImage([BASE], ["latest"])
    oci_layout(str(tmp_path / "layout"), [image])
    store, _, _ = new_store(str(tmp_path / "s"))
    assert store.load(str(tmp_path / "layout")) == [image.id]
    assert store.list()[0]["RepoTags"] == ["<none>:<none>"]


def test_shared_base_layer_is_stored_once(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    first = ArchiveImage([BASE, APP], ["one:1"])
    second = ArchiveImage([BASE, OTHER], ["two:1"])
    store.load(io.BytesIO(docker_archive([first])))
    store.load(io.BytesIO(docker_archive([second])))
    assert layers.unpacked == 3
    usage = store.disk_usage()
    by_tag = {image["RepoTags"][0]: image for image in usage["Images"]}
    base_size = layers.layer_size(digest(BASE))
    assert by_tag["one:1"]["SharedSize"] == base_size
    assert usage["LayersSize"] == sum(layers.files_size.values())


def test_loading_the_same_image_again_retags_without_unpacking(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    image = ArchiveImage([BASE, APP], ["app:1"])
    store.load(io.BytesIO(docker_archive([image])))
    refs_before = dict(layers.refs)
    moved = ArchiveImage([BASE, APP], ["app:2"], config=image.config)
    store.load(io.BytesIO(docker_archive([moved])))
    assert layers.unpacked == 2
    assert layers.refs == refs_before
    assert store.inspect(image.id)["RepoTags"] == ["app:1", "app:2"]


def test_save_then_load_keeps_ids_tags_and_layers(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path / "a"))
    images = [ArchiveImage([BASE, APP], ["app:1"]), ArchiveImage([BASE, OTHER], ["other:1"])]
    store.load(io.BytesIO(docker_archive(images)))
    data = store.save(["app:1", "other"]).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    assert names.count(f"blobs/sha256/{digest(BASE)[7:]}") == 1
    assert [entry["RepoTags"] for entry in manifest] == [["app:1"], ["other:1"]]
    annotations = [m["annotations"] for m in index["manifests"]]
    assert annotations[0] == {
        "io.containerd.image.name": "docker.io/library/app:1",
        "org.opencontainers.image.ref.name": "1",
    }
    other, _, _ = new_store(str(tmp_path / "b"))
    assert other.load(io.BytesIO(data)) == ["app:1", "other:1"]
    assert other.resolve("app:1") == images[0].id
    assert other.resolve("other:1") == images[1].id
    # The same archive read as an OCI layout gives the same images.
    os.makedirs(tmp_path / "x")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(tmp_path / "x", filter="data")
    os.unlink(tmp_path / "x" / "manifest.json")
    third, _, _ = new_store(str(tmp_path / "c"))
    assert sorted(third.load(str(tmp_path / "x"))) == ["app:1", "other:1"]


def test_save_by_id_has_no_tags(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image = ArchiveImage([BASE], ["app:1"])
    store.load(io.BytesIO(docker_archive([image])))
    with tarfile.open(fileobj=store.save([image.id[7:19]]), mode="r|") as archive:
        for member in archive:
            if member.name == "manifest.json":
                manifest = json.load(archive.extractfile(member))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] is None


def test_save_of_unknown_image_is_not_found(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    with pytest.raises(errdefs.NotFound):
        store.save(["nothing:here"])


def _corrupt_archives(tmp_path: Path) -> dict[str, bytes]:
    good = ArchiveImage([BASE, APP], ["bad:1"])
    plain = docker_archive([good])
    variants: dict[str, bytes] = {}
    variants["truncated gzip"] = gzip.compress(plain)[:-200]
    variants["truncated tar"] = plain[: len(plain) // 2]
    variants["not json"] = _replace(plain, "manifest.json", b"[{not json")
    variants["manifest not a list"] = _replace(plain, "manifest.json", b'{"a": 1}')
    wrong = ArchiveImage([BASE, APP], ["bad:1"], config=make_config([APP, BASE]))
    variants["diff id mismatch"] = docker_archive([wrong])
    missing = json.dumps([{"Config": f"{good.id[7:]}.json", "RepoTags": ["bad:1"],
                           "Layers": ["nope/layer.tar", "nope2/layer.tar"]}]).encode()
    variants["missing layer"] = _replace(plain, "manifest.json", missing)
    variants["bad config"] = _replace(plain, f"{good.id[7:]}.json", b'{"rootfs": 3}')
    variants["garbage"] = b"\x00\x01garbage" * 100
    escaping = json.dumps([{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]).encode()
    variants["config path escapes"] = _replace(plain, "manifest.json", escaping)
    layer_gzip_cut = ArchiveImage([BASE, APP], ["bad:1"])
    archive = docker_archive([layer_gzip_cut], legacy=False, gzip_layers=True)
    name = f"blobs/sha256/{digest(gzip.compress(APP))[7:]}"
    variants["truncated gzip layer"] = _replace(archive, name, gzip.compress(APP)[:-30])
    return variants


def _replace(archive: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as source, tarfile.open(
        fileobj=out, mode="w"
    ) as target:
        for member in source.getmembers():
            payload = source.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            if member.name == name:
                payload = data
                member.size = len(data)
            target.addfile(member, io.BytesIO(payload))
    return out.getvalue()


def test_corrupt_inputs_fail_cleanly_and_leave_the_store_unchanged(tmp_path: Path) -> None:
    store, layers, content = new_store(str(tmp_path))
    store.load(io.BytesIO(docker_archive([ArchiveImage([BASE, OTHER], ["keep:1"])])))
    before = snapshot(store, layers, content)
    for label, data in _corrupt_archives(tmp_path).items():
        with pytest.raises(errdefs.SampanError) as caught:
            store.load(io.BytesIO(data))
        assert isinstance(caught.value, errdefs.InvalidParameter), label
        assert str(caught.value), label
        assert snapshot(store, layers, content) == before, label


def test_oci_blob_digest_mismatch_and_missing_blob(tmp_path: Path) -> None:
    store, layers, content = new_store(str(tmp_path / "s"))
    before = snapshot(store, layers, content)
    layout = tmp_path / "layout"
    oci_layout(str(layout), [ArchiveImage([BASE, APP], ["x/y:1"])])
    blob = layout / "blobs" / "sha256" / digest(gzip.compress(APP))[7:]
    blob.write_bytes(gzip.compress(APP + b"\0" * 512))
    with pytest.raises(errdefs.InvalidParameter, match="mismatch"):
        store.load(str(layout))
    assert snapshot(store, layers, content) == before
    blob.unlink()
    with pytest.raises(errdefs.InvalidParameter, match="missing"):
        store.load(str(layout))
    assert snapshot(store, layers, content) == before


def test_multi_image_archive_is_all_or_nothing(tmp_path: Path) -> None:
    store, layers, content = new_store(str(tmp_path))
    before = snapshot(store, layers, content)
    good = ArchiveImage([BASE, APP], ["good:1"])
    bad = ArchiveImage([OTHER], ["bad:1"], config=make_config([APP]))
    with pytest.raises(errdefs.InvalidParameter):
        store.load(io.BytesIO(docker_archive([good, bad])))
    assert snapshot(store, layers, content) == before
