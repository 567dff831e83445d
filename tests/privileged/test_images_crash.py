"""A load killed half-way leaves no half image; reopening cleans up and loading again works."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from sampan.drivers.graph import ContentStore, LayerStore
from sampan.drivers.graph.images import ImageStore

pytestmark = pytest.mark.privileged

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
NGINX = os.path.join(_SHARED_IMAGES, "nginx.tar.gz")
NGINX_ID = "sha256:79d2c269937ff87dda28de3027bc331ee16a8ad157df3a86d58168f0b290742b"

_CHILD = textwrap.dedent(
    """
    import sys
    from sampan.drivers.graph import ContentStore, LayerStore
    from sampan.drivers.graph.images import ImageStore
    root = sys.argv[1]
    layers = LayerStore(root + "/layers")
    store = ImageStore(root + "/images", layers, ContentStore(root + "/content"))
    def progress(short_id, status):
        print(status, short_id, flush=True)
        if status == "Loading layer" and short_id.startswith("78a8b5f2a270"):
            sys.stdin.readline()  # wait here until the parent kills us
    store.load(sys.argv[2], progress=progress)
    print("done", flush=True)
    """
)


def test_killed_load_leaves_no_half_image_and_loads_again() -> None:
    workdir = tempfile.mkdtemp(prefix="sampan-test-", dir="/var/tmp")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, workdir, NGINX],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            seen = []
            for line in child.stdout:
                seen.append(line.strip())
                if line.startswith("Loading layer 78a8b5f2a270"):
                    break
            assert seen[-1] == "Loading layer 78a8b5f2a270", seen
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait()
        layers = LayerStore(os.path.join(workdir, "layers"))
        content = ContentStore(os.path.join(workdir, "content"))
        images = ImageStore(os.path.join(workdir, "images"), layers, content)
        try:
            assert images.list(all=True) == []
            assert layers.list() == []  # the base layer's journalled reference was given back
            assert content.list() == []
            assert images.load(NGINX) == ["nginx:bookworm"]
            assert images.resolve("nginx:bookworm") == NGINX_ID
        finally:
            images.close()
            layers.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
