"""Tag, untag, remove, list filters, prune, history, import and commit (in-memory layers)."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest
from test_images_fakes import (
    APP,
    BASE,
    OTHER,
    ArchiveImage,
    FakeLayers,
    digest,
    docker_archive,
    make_config,
    make_layer,
    new_store,
)

from sampan import errdefs
from sampan.drivers.graph.content import ContentStore
from sampan.drivers.graph.images import ImageStore


def _load(store: ImageStore, layers: list[bytes], tags: list[str], **config: object) -> str:
    image = ArchiveImage(layers, tags, config=make_config(layers, **config))  # type: ignore[arg-type]
    store.load(io.BytesIO(docker_archive([image])))
    return image.id


def test_tag_untag_and_last_tag_time(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image_id = _load(store, [BASE], ["base:1"])
    assert store.inspect(image_id)["Metadata"]["LastTagTime"] == "0001-01-01T00:00:00Z"
    assert store.tag("base:1", "localhost:5000/base") == "localhost:5000/base:latest"
    info = store.inspect("localhost:5000/base:latest")
    assert info["RepoTags"] == ["base:1", "localhost:5000/base:latest"]
    assert info["Metadata"]["LastTagTime"].startswith("20")
    assert store.untag("base:1") == "base:1"
    assert store.inspect(image_id)["RepoTags"] == ["localhost:5000/base:latest"]
    with pytest.raises(errdefs.NotFound):
        store.untag("base:1")
    with pytest.raises(errdefs.InvalidParameter):
        store.tag(image_id, "x@sha256:" + "a" * 64)
    with pytest.raises(errdefs.NotFound):
        store.tag("missing", "y")


def test_resolve_by_name_full_id_and_unique_prefix(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image_id = _load(store, [BASE], ["base:latest"])
    assert store.resolve("base") == image_id
    assert store.resolve(image_id) == image_id
    assert store.resolve(image_id[7:]) == image_id
    assert store.resolve(image_id[7:19]) == image_id
    assert store.resolve("sha256:" + image_id[7:15]) == image_id
    with pytest.raises(errdefs.NotFound, match="no such image: nothere"):
        store.resolve("nothere")


def test_remove_by_tag_untags_until_the_last_reference(tmp_path: Path) -> None:
    store, layers, content = new_store(str(tmp_path))
    image_id = _load(store, [BASE, APP], ["app:1", "app:2"])
    assert store.remove("app:1") == [{"Untagged": "app:1"}]
    records = store.remove("app:2")
    assert records[:2] == [{"Untagged": "app:2"}, {"Deleted": image_id}]
    assert {r["Deleted"] for r in records[2:]} == {digest(BASE), layers_chain(BASE, APP)}
    assert store.list(all=True) == []
    assert layers.refs == {}
    assert content.list() == []


def layers_chain(*layer_tars: bytes) -> str:
    from sampan.drivers.graph.images import chain_id_of

    chain = None
    for tar in layer_tars:
        chain = chain_id_of(chain, digest(tar))
    assert chain is not None
    return chain


def test_remove_by_id_with_tags_in_several_repositories_needs_force(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image_id = _load(store, [BASE], ["one:1"])
    store.tag("one:1", "two:1")
    with pytest.raises(errdefs.Conflict, match="must be forced"):
        store.remove(image_id[7:19])
    records = store.remove(image_id[7:19], force=True)
    assert {"Deleted": image_id} in records
    assert {"Untagged": "one:1"} in records and {"Untagged": "two:1"} in records


def test_remove_by_id_with_one_repository_untags_and_deletes(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    image_id = _load(store, [BASE], ["one:1"])
    records = store.remove(image_id)
    assert records[:2] == [{"Untagged": "one:1"}, {"Deleted": image_id}]


def test_image_used_by_a_container_needs_force_and_running_cannot_be_forced(
    tmp_path: Path,
) -> None:
    store, _, _ = new_store(str(tmp_path))
    image_id = _load(store, [BASE], ["busy:1"])

    def used(candidate: str) -> bool:
        return candidate == image_id

    with pytest.raises(errdefs.Conflict, match="must force"):
        store.remove("busy:1", in_use=used)
    with pytest.raises(errdefs.Conflict, match="stopped container"):
        store.remove(image_id, in_use=used)
    with pytest.raises(errdefs.Conflict, match="cannot be forced"):
        store.remove(image_id, force=True, in_use=used, in_use_running=used)
    assert store.resolve("busy:1") == image_id
    records = store.remove("busy:1", force=True, in_use=used)
    assert {"Deleted": image_id} in records


def test_commit_history_parent_and_dangling_parent_pruning(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    base_id = _load(store, [BASE], ["base:1"])
    layers.rw["c1"] = make_layer({"new.txt": b"hello"})
    child = store.commit(
        "c1", "base:1", {"Cmd": ["touch", "/new.txt"], "Env": ["A=1"]},
        changes=["CMD [\"cat\", \"/new.txt\"]", "LABEL stage=one"],
        author="tester", comment="first", ref="child:1",
    )
    info = store.inspect("child:1")
    assert info["Id"] == child and info["Parent"] == base_id
    assert info["Config"]["Cmd"] == ["cat", "/new.txt"]
    assert info["Config"]["Env"] == ["A=1"]
    assert info["Config"]["Labels"] == {"stage": "one"}
    assert info["Author"] == "tester" and info["Comment"] == "first"
    assert info["Container"] == "c1"
    assert info["RootFS"]["Layers"] == [digest(BASE), digest(layers.rw["c1"])]
    history = store.history("child:1")
    assert [h["Id"] for h in history] == [child, base_id]
    assert history[0]["CreatedBy"] == "touch /new.txt"
    assert history[0]["Tags"] == ["child:1"] and history[1]["Tags"] == ["base:1"]
    assert history[0]["Size"] == len(b"hello")
    # A parent with a child cannot be deleted; untagging it leaves an intermediate image.
    with pytest.raises(errdefs.Conflict, match="dependent child"):
        store.remove(base_id, force=True)
    store.untag("base:1")
    assert [i["Id"] for i in store.list()] == [child]
    assert {i["Id"] for i in store.list(all=True)} == {child, base_id}
    # Removing the child prunes the now dangling, unused parent too.
    records = store.remove("child:1")
    deleted = [r["Deleted"] for r in records if "Deleted" in r]
    assert child in deleted and base_id in deleted
    assert layers.refs == {}


def test_commit_of_an_unchanged_container_adds_an_empty_history_entry(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    _load(store, [BASE], ["base:1"])
    layers.rw["c2"] = b"\0" * 1024
    image_id = store.commit("c2", "base:1", None, changes=["ENV X=1"])
    info = store.inspect(image_id)
    assert info["RootFS"]["Layers"] == [digest(BASE)]
    assert store.config(image_id)["history"][-1]["empty_layer"] is True
    assert info["Config"]["Env"] is not None and "X=1" in info["Config"]["Env"]
    assert layers.refs[digest(BASE)] == 2


def test_import_rootfs_from_stream_and_file_with_changes(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path / "s"))
    rootfs = make_layer({"bin/": None, "bin/tool": b"x" * 10})
    image_id = store.import_rootfs(
        io.BytesIO(gzip.compress(rootfs)), "imported:1",
        changes=["ENV PATH=/bin", 'CMD ["tool"]', "EXPOSE 8080", "WORKDIR /srv",
                 "USER 1000", "VOLUME /data", "ENTRYPOINT [\"/bin/tool\"]", "LABEL a=b"],
        message="from test",
    )
    info = store.inspect("imported:1")
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [digest(rootfs)]
    assert info["Comment"] == "from test"
    config = info["Config"]
    assert config["Env"] == ["PATH=/bin"] and config["Cmd"] == ["tool"]
    assert config["ExposedPorts"] == {"8080/tcp": {}} and config["WorkingDir"] == "/srv"
    assert config["User"] == "1000" and config["Volumes"] == {"/data": {}}
    assert config["Entrypoint"] == ["/bin/tool"] and config["Labels"] == {"a": "b"}
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    path = tmp_path / "rootfs.tar"
    path.write_bytes(rootfs)
    second = store.import_rootfs(str(path))
    assert store.config(second)["history"][0]["comment"] == "Imported from -"
    assert store.list(filters={"dangling": ["true"]})[0]["Id"] == second


def test_import_of_a_truncated_stream_leaves_nothing(tmp_path: Path) -> None:
    store, layers, content = new_store(str(tmp_path))
    data = gzip.compress(make_layer({"a": b"x" * 4000}))
    with pytest.raises(errdefs.InvalidParameter):
        store.import_rootfs(io.BytesIO(data[:-40]), "broken:1")
    assert store.list(all=True) == [] and layers.refs == {} and content.list() == []


def test_list_filters(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    old = _load(store, [BASE], ["old:1"], created="2020-01-01T00:00:00Z",
                runtime={"Labels": {"tier": "db", "env": "prod"}})
    mid = _load(store, [APP], ["me/mid:2"], created="2022-01-01T00:00:00Z",
                runtime={"Labels": {"tier": "web"}})
    new = _load(store, [OTHER], ["new:3"], created="2024-01-01T00:00:00.5Z")
    store.untag("new:3")

    def ids(filters: dict[str, list[str]]) -> list[str]:
        return [image["Id"] for image in store.list(filters)]

    assert ids({}) == [new, mid, old]
    assert ids({"reference": ["old"]}) == [old]
    assert ids({"reference": ["me/*"]}) == [mid]
    assert ids({"reference": ["*:1", "*/*:2"]}) == [mid, old]
    assert ids({"dangling": ["true"]}) == [new]
    assert ids({"dangling": ["false"]}) == [mid, old]
    assert ids({"label": ["tier"]}) == [mid, old]
    assert ids({"label": ["tier=db"]}) == [old]
    assert ids({"label": ["tier=db", "env=prod"]}) == [old]
    assert ids({"label": ["tier=db", "env=dev"]}) == []
    assert ids({"before": ["me/mid:2"]}) == [old]
    assert ids({"since": ["old:1"]}) == [new, mid]
    assert ids({"until": ["2023-01-01T00:00:00Z"]}) == [mid, old]
    summary = store.list({"reference": ["old"]})[0]
    assert summary["Created"] == 1577836800
    assert summary["Labels"] == {"tier": "db", "env": "prod"}
    assert set(summary) >= {"Id", "ParentId", "RepoTags", "RepoDigests", "Size", "SharedSize",
                            "Containers", "VirtualSize"}
    with pytest.raises(errdefs.InvalidParameter, match="invalid filter 'color'"):
        store.list({"color": ["red"]})
    with pytest.raises(errdefs.InvalidParameter):
        store.list({"dangling": ["maybe"]})


def test_prune_dangling_and_all_unused(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    kept = _load(store, [BASE], ["kept:1"])
    used = _load(store, [APP], ["used:1"])
    dangling = _load(store, [OTHER], ["gone:1"])
    store.untag("gone:1")
    report = store.prune()
    assert {"Deleted": dangling} in report["ImagesDeleted"]
    assert report["SpaceReclaimed"] == 5000
    assert {i["Id"] for i in store.list()} == {kept, used}
    report = store.prune(all=True, in_use=lambda image: image == used)
    assert {"Untagged": "kept:1"} in report["ImagesDeleted"]
    assert {"Deleted": kept} in report["ImagesDeleted"]
    assert [i["Id"] for i in store.list()] == [used]
    assert list(layers.refs) == [digest(APP)]


def test_prune_with_label_filter(tmp_path: Path) -> None:
    store, _, _ = new_store(str(tmp_path))
    a = _load(store, [BASE], ["a:1"], runtime={"Labels": {"keep": "no"}})
    b = _load(store, [APP], ["b:1"], runtime={"Labels": {"keep": "yes"}})
    report = store.prune(all=True, filters={"label": ["keep=no"]})
    assert {"Deleted": a} in report["ImagesDeleted"]
    assert [i["Id"] for i in store.list()] == [b]


def test_disk_usage_counts_shared_and_unique_sizes(tmp_path: Path) -> None:
    store, layers, _ = new_store(str(tmp_path))
    one = _load(store, [BASE, APP], ["one:1"])
    two = _load(store, [BASE, OTHER], ["two:1"])
    usage = store.disk_usage(in_use=lambda image: image == one)
    base = layers.layer_size(digest(BASE))
    by_id = {image["Id"]: image for image in usage["Images"]}
    assert by_id[one]["SharedSize"] == base and by_id[two]["SharedSize"] == base
    assert by_id[one]["Size"] - by_id[one]["SharedSize"] == 400
    assert by_id[two]["Size"] - by_id[two]["SharedSize"] == 5000
    assert by_id[one]["Containers"] == 1 and by_id[two]["Containers"] == 0
    assert usage["LayersSize"] == base + 400 + 5000


def test_reopening_releases_layer_references_of_an_interrupted_operation(tmp_path: Path) -> None:
    layers = FakeLayers()
    content = ContentStore(str(tmp_path / "content"))
    store = ImageStore(str(tmp_path / "images"), layers, content)
    _load(store, [BASE], ["base:1"])
    # Simulate a crash mid-load: a layer was registered and journalled, config blob owned
    # and written, but the image transaction never ran.
    half = layers.register(io.BytesIO(APP), digest(BASE))
    orphan_config = make_config([BASE, APP])
    with store._db.transaction() as tx:
        tx.add_pending_layer("crashed", half.chain_id)
        tx.own_blob(digest(orphan_config))
    content.ingest_bytes(orphan_config)
    os.makedirs(tmp_path / "images" / "tmp" / "load-x")
    store.close()
    reopened = ImageStore(str(tmp_path / "images"), layers, content)
    assert [i["RepoTags"] for i in reopened.list(all=True)] == [["base:1"]]
    assert layers.refs == {digest(BASE): 1}
    assert not content.has(digest(orphan_config))
    assert os.listdir(tmp_path / "images" / "tmp") == []
    # and the load succeeds afterwards
    _load(reopened, [BASE, APP], ["app:1"])
    assert json.loads(json.dumps(reopened.inspect("app:1")))["RootFS"]["Layers"][-1] == digest(APP)
