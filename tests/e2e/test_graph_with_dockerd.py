"""Images written by our image store, read back by real dockerd (and skopeo).

One private containerd + dockerd (``EngineStack``, its own socket and data-root, no image
preloaded) serves the module. Our stores live under a ``sampan-test-<random>`` directory,
removed afterwards with anything still mounted below it.

* ``ImageStore.save`` writes an archive that ``docker load`` accepts with the same image IDs
  and RepoTags we report, and that ``skopeo inspect docker-archive:`` reads with the same IDs.
* A container layer committed by ``ImageStore.commit`` (files and a directory deleted, a file
  changed, one added) is, once saved and loaded into dockerd, a layer dockerd applies: a
  container of it (``docker run --network none``, runc) sees the same changes, and
  ``docker history`` lists the new layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerd_harness import EngineStack, HarnessError, require_program
from tests.privileged.test_graph_storage_helpers import mounted, mounts_below, umount

from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.images import ImageStore

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
FIXTURES = _SHARED_IMAGES
BUSYBOX_ID = "sha256:1b9b191620271114c6bba9637e29032a4cc90a36572b0a880429b57b223e2e52"
NGINX_ID = "sha256:79d2c269937ff87dda28de3027bc331ee16a8ad157df3a86d58168f0b290742b"


@dataclass
class Stores:
    layers: LayerStore
    content: ContentStore
    images: ImageStore

    def close(self) -> None:
        self.images.close()
        self.layers.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sampan-test-", dir="/var/tmp")
    try:
        yield path
    finally:
        for point in sorted(mounts_below(path), reverse=True):
            umount(point)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def stores(workdir: str) -> Iterator[Stores]:
    root = os.path.join(workdir, "store")
    layers = LayerStore(os.path.join(root, "layers"), "overlay")
    content = ContentStore(os.path.join(root, "content"))
    opened = Stores(layers, content, ImageStore(os.path.join(root, "images"), layers, content))
    try:
        for name in ("busybox.tar", "nginx.tar.gz"):
            opened.images.load(os.path.join(FIXTURES, name))
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def dockerd(reference_engines: None) -> Iterator[EngineStack]:
    """A dockerd with no image at all: whatever it shows came from our archives."""
    try:
        stack = EngineStack(load_images=())
        stack.__enter__()
    except HarnessError as error:
        pytest.fail(str(error))
    try:
        yield stack
    finally:
        stack.close()
        assert not stack.cleanup_report, f"engine teardown left traces: {stack.cleanup_report}"


def _save(images: ImageStore, names: list[str], path: str) -> str:
    with images.save(names) as stream, open(path, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return path


def _docker_image(stack: EngineStack, name: str) -> dict[str, object]:
    data = json.loads(stack.docker_ok("image", "inspect", name))
    assert isinstance(data, list) and len(data) == 1
    assert isinstance(data[0], dict)
    return data[0]


def test_saved_archive_loads_into_dockerd_with_the_same_ids_and_tags(
    stores: Stores, dockerd: EngineStack, workdir: str
) -> None:
    archive = _save(stores.images, ["nginx:bookworm", "busybox:latest"], f"{workdir}/saved.tar")
    assert stores.images.resolve("nginx:bookworm") == NGINX_ID
    assert stores.images.resolve("busybox:latest") == BUSYBOX_ID
    output = dockerd.docker_ok("load", "-i", archive, timeout=180)
    assert "Loaded image: nginx:bookworm" in output
    assert "Loaded image: busybox:latest" in output
    for name in ("nginx:bookworm", "busybox:latest"):
        ours = stores.images.inspect(name)
        docker_id = dockerd.docker_ok("image", "inspect", "--format", "{{.Id}}", name).strip()
        assert docker_id == ours["Id"], name
        theirs = _docker_image(dockerd, name)
        assert theirs["RepoTags"] == ours["RepoTags"], name
        rootfs = theirs["RootFS"]
        assert isinstance(rootfs, dict)
        assert rootfs["Layers"] == ours["RootFS"]["Layers"], name
        config = theirs["Config"]
        assert isinstance(config, dict)
        assert config["Cmd"] == ours["Config"]["Cmd"], name
    # The very same file passes skopeo, which reads it as a docker-archive.
    skopeo = require_program("skopeo")
    for name in ("nginx:bookworm", "busybox:latest"):
        source = f"docker-archive:{archive}:{name}"
        raw_config = subprocess.check_output([skopeo, "inspect", "--config", "--raw", source])
        assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == stores.images.resolve(name)
        inspected = json.loads(subprocess.check_output([skopeo, "inspect", source]))
        assert inspected["Layers"] == stores.images.inspect(name)["RootFS"]["Layers"]


CONTAINER = "sampan-test-commit"
COMMITTED = "sampan-test/committed:1"
# What the committed layer must do to busybox: deleted paths (a file, a directory with
# children), a changed file, an added one. Not /etc/hostname, /etc/hosts or /etc/resolv.conf:
# dockerd bind-mounts its own over those in every container.
DELETED = ("/etc/group", "/usr")  # /usr holds the (empty) bin and sbin directories
CHANGED = ("/etc/passwd", "sampan:x:4242:4242:committed by sampan:/:/bin/sh\n")
ADDED = ("/opt/sampan/added.txt", "added by the container\n")


def test_committed_container_layer_shows_its_changes_in_dockerd(
    stores: Stores, dockerd: EngineStack, workdir: str
) -> None:
    images = stores.images
    parent = images.resolve("busybox:latest")
    stores.layers.create_rw(CONTAINER, images.top_chain_id(parent))
    try:
        with mounted(stores.layers, CONTAINER, f"{workdir}/rootfs") as root:
            assert os.listdir(root + DELETED[1])  # a directory with children below it
            os.unlink(root + DELETED[0])
            shutil.rmtree(root + DELETED[1])
            with open(root + CHANGED[0], "a") as f:
                f.write(CHANGED[1])
            os.makedirs(os.path.dirname(root + ADDED[0]))
            with open(root + ADDED[0], "w") as f:
                f.write(ADDED[1])
            with open(root + CHANGED[0]) as f:
                passwd = f.read()
        image_id = images.commit(
            CONTAINER, "busybox:latest", None,
            changes=["ENV SAMPAN_COMMITTED=yes", 'CMD ["sh"]'],
            author="sampan tests", comment="sampan commit test", ref=COMMITTED,
        )  # fmt: skip
    finally:
        stores.layers.remove_rw(CONTAINER)
    ours = images.inspect(COMMITTED)
    assert ours["Parent"] == parent and len(ours["RootFS"]["Layers"]) == 2

    archive = _save(images, [COMMITTED], f"{workdir}/committed.tar")
    output = dockerd.docker_ok("load", "-i", archive, timeout=120)
    assert f"Loaded image: {COMMITTED}" in output
    theirs = _docker_image(dockerd, COMMITTED)
    assert theirs["Id"] == image_id
    rootfs = theirs["RootFS"]
    assert isinstance(rootfs, dict) and rootfs["Layers"] == ours["RootFS"]["Layers"]

    script = (
        f"for p in {' '.join(DELETED)}; do test -e $p && echo present:$p; done; "
        f"cat {CHANGED[0]}; echo ---; cat {ADDED[0]}; echo ---; "
        'echo "env:$SAMPAN_COMMITTED"; ls /bin/env /bin/busybox'
    )
    run = dockerd.docker_ok("run", "--rm", "--network", "none", COMMITTED, "sh", "-c", script,
                            timeout=120)
    assert "present:" not in run, run
    shown_passwd, shown_added, rest = run.split("---\n")
    assert shown_passwd == passwd and shown_passwd.endswith(CHANGED[1])
    assert shown_added == ADDED[1]
    assert rest.splitlines() == ["env:yes", "/bin/busybox", "/bin/env"]

    history = [
        json.loads(line)
        for line in dockerd.docker_ok(
            "history", "--no-trunc", "--format", "{{json .}}", COMMITTED
        ).splitlines()
    ]
    assert len(history) == 2, history
    newest, base = history
    assert newest["ID"] == image_id and newest["Comment"] == "sampan commit test"
    assert newest["Size"] not in ("0B", "0")
    # dockerd names only the top entry (a loaded image records no parent): the base entry
    # is busybox's own history line, "<missing>" as for any image docker load brought in.
    assert base["ID"] == "<missing>"
    assert base["Comment"] == images.history(BUSYBOX_ID)[0]["Comment"] != ""
