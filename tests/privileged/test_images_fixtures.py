"""The image store over the real layer store (overlay where it works) and the shared fixtures.

Expected IDs and diff_ids are those in /work/shared/images/README.md and busybox.README.md.
Each test works under its own ``sampan-test-<random>`` directory, removed afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sampan import errdefs
from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.images import ImageStore

pytestmark = pytest.mark.privileged

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
FIXTURES = _SHARED_IMAGES
BASE = "sha256:9ea9fef3a929345c829cfab612773756f7d185adab7a1bbc4e55fc650270fd3f"
EXPECTED = {
    "busybox:latest": (
        "sha256:1b9b191620271114c6bba9637e29032a4cc90a36572b0a880429b57b223e2e52",
        ["sha256:0a9f49b392c48b8ae37cde4b855c60a03851fa160081a7e2ccc6923b366c327f"],
    ),
    "debian:bookworm-slim": (
        "sha256:40946bf3ff94c3bb09ba20b5730a7e6168141a2872723ea6cc0937921e68b76b",
        [BASE],
    ),
    "nginx:bookworm": (
        "sha256:79d2c269937ff87dda28de3027bc331ee16a8ad157df3a86d58168f0b290742b",
        [BASE, "sha256:78a8b5f2a2709151b2ee70ead8da974519c2373eebed92a69ad02d5bf8202ae1"],
    ),
    "redis:bookworm": (
        "sha256:f81e2f8592eaa6d0ffb5b1aded7f41ae9790c8de0d844851dbc9e74cead99046",
        [BASE, "sha256:fdf0057e1846ac992728e6a47a098f46114cf279b78d1a16e0bbe49a22818bb8"],
    ),
    "python:bookworm": (
        "sha256:8642b5d5c40005cd9c910d4bd4e3dadd65ebb9c6c9de0c0c96e363f11a8829ae",
        [BASE, "sha256:bfc3ae8fb4ab8e6cf92066922dc053a36964d8317fa104eeaa381155dc0b26c1"],
    ),
}


@dataclass
class Stores:
    root: str
    layers: LayerStore
    content: ContentStore
    images: ImageStore

    def close(self) -> None:
        self.images.close()
        self.layers.close()


def open_stores(root: str, driver: str = "auto") -> Stores:
    layers = LayerStore(os.path.join(root, "layers"), driver)
    content = ContentStore(os.path.join(root, "content"))
    return Stores(root, layers, content, ImageStore(os.path.join(root, "images"), layers, content))


def _workdir() -> str:
    return tempfile.mkdtemp(prefix="sampan-test-", dir="/var/tmp")


@pytest.fixture
def workdir() -> Iterator[str]:
    path = _workdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def loaded() -> Iterator[Stores]:
    """One store with every docker-archive fixture loaded (slow part shared by the tests)."""
    path = _workdir()
    stores = open_stores(os.path.join(path, "store"))
    try:
        for name in ("busybox.tar", "debian.tar.gz", "nginx.tar.gz", "redis.tar.gz"):
            stores.images.load(os.path.join(FIXTURES, name))
        yield stores
    finally:
        stores.close()
        shutil.rmtree(path, ignore_errors=True)


def _assert_expected(images: ImageStore, names: list[str]) -> None:
    for name in names:
        image_id, diff_ids = EXPECTED[name]
        info = images.inspect(name)
        assert info["Id"] == image_id, name
        assert name in info["RepoTags"]
        assert info["RootFS"]["Layers"] == diff_ids, name
        assert hashlib.sha256(images.config_bytes(image_id)).hexdigest() == image_id[7:]


def test_docker_archives_load_with_docker_image_ids(loaded: Stores) -> None:
    _assert_expected(
        loaded.images,
        ["busybox:latest", "debian:bookworm-slim", "nginx:bookworm", "redis:bookworm"],
    )
    info = loaded.images.inspect("nginx:bookworm")
    assert info["Config"]["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert info["GraphDriver"]["Name"] == loaded.layers.driver_name
    assert info["Size"] > 80_000_000


def test_shared_bookworm_base_layer_is_stored_once(loaded: Stores) -> None:
    bases = [layer for layer in loaded.layers.list() if layer.diff_id == BASE]
    assert len(bases) == 1 and bases[0].parent is None
    usage = loaded.images.disk_usage()
    nginx = next(i for i in usage["Images"] if i["RepoTags"] == ["nginx:bookworm"])
    assert nginx["SharedSize"] == loaded.layers.layer_size(BASE)
    distinct = {layer.chain_id for layer in loaded.layers.list()}
    assert usage["LayersSize"] == sum(loaded.layers.layer_size(c) for c in distinct)


def test_oci_layout_directory_and_tar_load_the_same_images(workdir: str) -> None:
    stores = open_stores(os.path.join(workdir, "dir"))
    try:
        loaded = stores.images.load(os.path.join(FIXTURES, "oci-bookworm"))
        assert sorted(loaded) == sorted(
            ["debian:bookworm-slim", "nginx:bookworm", "redis:bookworm", "python:bookworm"]
        )
        _assert_expected(stores.images, loaded)
        assert len([la for la in stores.layers.list() if la.diff_id == BASE]) == 1
    finally:
        stores.close()
    archive = os.path.join(workdir, "oci-bookworm.tar")
    with tarfile.open(archive, "w") as out:
        for name in sorted(os.listdir(os.path.join(FIXTURES, "oci-bookworm"))):
            out.add(os.path.join(FIXTURES, "oci-bookworm", name), arcname=name)
    stores = open_stores(os.path.join(workdir, "tar"))
    try:
        with open(archive, "rb") as stream:
            loaded = stores.images.load(stream)
        _assert_expected(stores.images, loaded)
        assert len(loaded) == 4
    finally:
        stores.close()


def test_save_then_load_round_trip_keeps_ids(loaded: Stores, workdir: str) -> None:
    archive = os.path.join(workdir, "saved.tar")
    with loaded.images.save(["nginx:bookworm", "busybox"]) as stream, open(archive, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names.count(f"blobs/sha256/{BASE[7:]}") == 1
    assert {"index.json", "oci-layout", "manifest.json", "repositories"} <= set(names)
    stores = open_stores(os.path.join(workdir, "again"))
    try:
        assert sorted(stores.images.load(archive)) == ["busybox:latest", "nginx:bookworm"]
        _assert_expected(stores.images, ["busybox:latest", "nginx:bookworm"])
    finally:
        stores.close()


def test_saved_archive_passes_skopeo_inspect_with_the_same_ids(
    loaded: Stores, workdir: str
) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    archive = os.path.join(workdir, "saved.tar")
    with loaded.images.save(["redis:bookworm", "busybox:latest"]) as stream, open(
        archive, "wb"
    ) as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    for name in ("redis:bookworm", "busybox:latest"):
        image_id, diff_ids = EXPECTED[name]
        source = f"docker-archive:{archive}:{name}"
        inspected = json.loads(subprocess.check_output([skopeo, "inspect", source]))
        assert inspected["Layers"] == diff_ids
        raw_config = subprocess.check_output([skopeo, "inspect", "--config", "--raw", source])
        assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == image_id


def test_import_busybox_rootfs_gives_the_fixture_diff_id(workdir: str) -> None:
    stores = open_stores(os.path.join(workdir, "s"))
    try:
        image_id = stores.images.import_rootfs(
            os.path.join(FIXTURES, "busybox-rootfs.tar"),
            "imported/busybox:1",
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     'CMD ["sh"]'],
        )
        info = stores.images.inspect("imported/busybox:1")
        assert info["Id"] == image_id
        assert info["RootFS"]["Layers"] == EXPECTED["busybox:latest"][1]
        assert info["Config"]["Cmd"] == ["sh"]
        chain = stores.images.top_chain_id(image_id)
        assert chain == EXPECTED["busybox:latest"][1][0]
        layer_dir = stores.layers.layer_dir(chain)
        assert os.path.islink(os.path.join(layer_dir, "bin", "sh"))
        with open(os.path.join(FIXTURES, "busybox-rootfs.tar"), "rb") as stream:
            second = stores.images.import_rootfs(io.BytesIO(stream.read()), None, message="again")
        assert stores.images.top_chain_id(second) == chain
    finally:
        stores.close()


def test_commit_of_a_container_layer_makes_a_loadable_child_image(workdir: str) -> None:
    stores = open_stores(os.path.join(workdir, "s"), driver="vfs")
    try:
        stores.images.load(os.path.join(FIXTURES, "busybox.tar"))
        parent = stores.images.resolve("busybox")
        mounts = stores.layers.create_rw("sampan-test-c1", stores.images.top_chain_id(parent))
        rootfs = mounts[0].source
        with open(os.path.join(rootfs, "etc", "motd"), "w") as handle:
            handle.write("committed\n")
        os.unlink(os.path.join(rootfs, "etc", "hostname"))
        child = stores.images.commit(
            "sampan-test-c1", "busybox:latest", None,
            changes=['CMD ["cat", "/etc/motd"]'], comment="test commit", ref="committed:1",
        )
        info = stores.images.inspect("committed:1")
        assert info["Parent"] == parent and info["Config"]["Cmd"] == ["cat", "/etc/motd"]
        assert len(info["RootFS"]["Layers"]) == 2
        top = stores.images.top_chain_id(child)
        assert top is not None
        with tarfile.open(fileobj=stores.layers.diff_tar(top)) as tar:
            names = set(tar.getnames())
        assert {"etc/motd", "etc/.wh.hostname"} <= {n.removeprefix("./") for n in names}
        history = stores.images.history("committed:1")
        assert history[0]["Id"] == child and history[0]["Comment"] == "test commit"
        with pytest.raises(errdefs.Conflict):
            stores.images.remove(parent, force=True)
        stores.layers.remove_rw("sampan-test-c1")
        archive = os.path.join(workdir, "committed.tar")
        with stores.images.save(["committed:1"]) as stream, open(archive, "wb") as out:
            shutil.copyfileobj(stream, out)
    finally:
        stores.close()
    fresh = open_stores(os.path.join(workdir, "fresh"), driver="vfs")
    try:
        assert fresh.images.load(archive) == ["committed:1"]
        assert fresh.images.resolve("committed:1") == child
        tree = fresh.layers.layer_dir(fresh.images.top_chain_id(child) or "")
        with open(os.path.join(tree, "etc", "motd")) as handle:
            assert handle.read() == "committed\n"
        assert not os.path.exists(os.path.join(tree, "etc", "hostname"))
    finally:
        fresh.close()


def _listing(stores: Stores) -> object:
    return (
        stores.images.list(all=True),
        sorted((la.chain_id, stores.layers.refcount(la.chain_id)) for la in stores.layers.list()),
        stores.content.list(),
    )


def _tiny_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return out.getvalue()


def test_corrupt_fixture_copies_fail_and_leave_the_store_unchanged(workdir: str) -> None:
    stores = open_stores(os.path.join(workdir, "s"))
    try:
        stores.images.tag(stores.images.import_rootfs(io.BytesIO(_tiny_tar())), "tiny:1")
        before = _listing(stores)
        with open(os.path.join(FIXTURES, "debian.tar.gz"), "rb") as handle:
            truncated = handle.read(20_000_000)
        with pytest.raises(errdefs.InvalidParameter, match=r"truncated|end of"):
            stores.images.load(io.BytesIO(truncated))
        assert _listing(stores) == before
        with open(os.path.join(FIXTURES, "busybox.tar"), "rb") as handle:
            data = bytearray(handle.read())
        # Flip bytes inside the layer: the diff_id no longer matches the config.
        data[1_000_000:1_000_016] = b"X" * 16
        with pytest.raises(errdefs.InvalidParameter):
            stores.images.load(io.BytesIO(bytes(data)))
        assert _listing(stores) == before
        assert os.listdir(os.path.join(stores.root, "images", "tmp")) == []
        assert stores.images.load(os.path.join(FIXTURES, "busybox.tar")) == ["busybox:latest"]
    finally:
        stores.close()


def test_removing_images_releases_layers_and_blobs(workdir: str) -> None:
    stores = open_stores(os.path.join(workdir, "s"))
    try:
        stores.images.load(os.path.join(FIXTURES, "nginx.tar.gz"))
        stores.images.load(os.path.join(FIXTURES, "redis.tar.gz"))
        records = stores.images.remove("nginx:bookworm")
        assert records[0] == {"Untagged": "nginx:bookworm"}
        assert {"Deleted": EXPECTED["nginx:bookworm"][0]} in records
        assert [la.diff_id for la in stores.layers.list() if la.diff_id == BASE] == [BASE]
        stores.images.remove("redis:bookworm")
        assert stores.layers.list() == []
        assert stores.images.list(all=True) == []
        assert stores.content.list() == []
    finally:
        stores.close()
