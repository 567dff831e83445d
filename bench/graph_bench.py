#!/usr/bin/env python3
"""Image store vs real dockerd: load, save, import, commit; prints a table (not a test).

Both engines run in one go on the same disk (dockerd first, then sampan):

* **dockerd**: a private containerd + dockerd started with the e2e harness
  (``tests/e2e/dockerd_harness.EngineStack``: own socket, data-root under ``/tmp/sx.XXXXXX``,
  overlay2, nothing preloaded). Timed through its Engine API on the unix socket (no docker
  CLI start-up in the numbers): ``POST /images/load``, ``GET /images/get``,
  ``POST /images/create?fromSrc=-``, ``POST /commit``.
* **sampan**: ``ImageStore`` in this process over ``LayerStore(driver="overlay")`` and a
  ``ContentStore`` under ``/var/tmp/sampan-bench-XXXXXX``.

Operations (median of ``--runs``, after one untimed warm-up of each):

==================  =========================================================================
load X (absent)     X not in the store: dockerd after ``DELETE /images`` of everything, sampan
                    into a fresh empty store
load X (present)    the same archive again, every layer already there
save nginx          the archive of ``nginx:bookworm`` read to the end (and dropped)
import busybox      ``busybox-rootfs.tar`` as a one-layer image (the image removed between runs)
commit busybox      a busybox container that deleted a file and a directory, changed a file
                    and added one, committed (the container is made outside the timing)
==================  =========================================================================

Then the unpack throughput of the 77 MB bookworm base layer: ``LayerStore.register`` of the
uncompressed layer tar into a fresh store, and ``load debian (absent)`` of both engines as
MB (uncompressed layer bytes) per second.

Usage: ``python3 bench/graph_bench.py [--runs 3] [--no-durable] [--only sampan]`` as root.
Everything is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import shutil
import socket
import statistics
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from dockerd_harness import EngineStack  # noqa: E402

from sampan.drivers.graph import ContentStore, LayerStore  # noqa: E402
from sampan.drivers.graph.images import ImageStore  # noqa: E402

IMAGES = Path(os.environ.get("SAMPAN_SHARED_IMAGES", "/work/shared/images"))
DEBIAN = IMAGES / "debian.tar.gz"
NGINX = IMAGES / "nginx.tar.gz"
BUSYBOX = IMAGES / "busybox.tar"
BUSYBOX_ROOTFS = IMAGES / "busybox-rootfs.tar"
BASE_DIFF_ID = "9ea9fef3a929345c829cfab612773756f7d185adab7a1bbc4e55fc650270fd3f"
MB = 1_000_000
_CHUNK = 1 << 20


# -- dockerd over its API ---------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 600) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerApi:
    """The few Engine API calls the benchmark makes; every response is read to the end."""

    def __init__(self, socket_path: str) -> None:
        self._socket = socket_path

    def call(
        self,
        method: str,
        path: str,
        body: BinaryIO | bytes | None = None,
        length: int | None = None,
        query: dict[str, str] | None = None,
        sink: Callable[[bytes], object] | None = None,
    ) -> bytes:
        # Debian 12's docker.io is 20.10: API 1.41 at most.
        url = "/v1.41" + path + ("?" + urllib.parse.urlencode(query) if query else "")
        kind = "application/json" if isinstance(body, bytes) else "application/x-tar"
        headers = {"Content-Type": kind if body is not None else "text/plain"}
        if length is not None:
            headers["Content-Length"] = str(length)
        conn = _UnixConnection(self._socket)
        try:
            try:
                conn.request(method, url, body=body, headers=headers)
            except BrokenPipeError:
                pass  # dockerd answered (an error) before reading the whole body
            response = conn.getresponse()
            kept = bytearray()
            while chunk := response.read(_CHUNK):
                if sink is None:
                    kept += chunk
                else:
                    sink(chunk)
            if response.status >= 300:
                raise RuntimeError(f"dockerd {method} {path}: {response.status} {kept[:300]!r}")
            if b'"error"' in kept[-2000:]:  # streamed errors come with status 200
                raise RuntimeError(f"dockerd {method} {path}: {kept[-300:]!r}")
            return bytes(kept)
        finally:
            conn.close()

    def load(self, archive: Path) -> None:
        with open(archive, "rb") as f:
            self.call("POST", "/images/load", f, os.fstat(f.fileno()).st_size, {"quiet": "1"})

    def save(self, name: str) -> int:
        total = 0

        def count(chunk: bytes) -> None:
            nonlocal total
            total += len(chunk)

        self.call("GET", "/images/get", query={"names": name}, sink=count)
        return total

    def import_rootfs(self, tar: Path, repo: str) -> None:
        with open(tar, "rb") as f:
            self.call(
                "POST",
                "/images/create",
                f,
                os.fstat(f.fileno()).st_size,
                {"fromSrc": "-", "repo": repo},
            )

    def remove_all_images(self) -> None:
        for image in json.loads(self.call("GET", "/images/json", query={"all": "1"})):
            self.call("DELETE", f"/images/{image['Id']}", query={"force": "1"})

    def remove_image(self, name: str) -> None:
        self.call("DELETE", f"/images/{name}", query={"force": "1"})

    def run_to_exit(self, name: str, image: str, command: list[str]) -> None:
        config = {
            "Image": image,
            "Cmd": command,
            "NetworkDisabled": True,
            "HostConfig": {"NetworkMode": "none"},
        }
        body = json.dumps(config).encode()
        self.call("POST", "/containers/create", body, len(body), {"name": name})
        self.call("POST", f"/containers/{name}/start")
        status = json.loads(self.call("POST", f"/containers/{name}/wait"))
        if status.get("StatusCode") != 0:
            raise RuntimeError(f"container {name} exited {status}")

    def commit(self, container: str, repo: str) -> None:
        self.call("POST", "/commit", b"{}", 2, {"container": container, "repo": repo})

    def remove_container(self, name: str) -> None:
        self.call("DELETE", f"/containers/{name}", query={"force": "1"})


# -- sampan in process ------------------------------------------------------------------------


class Sampan:
    def __init__(self, root: str, durable: bool) -> None:
        self.root = root
        self.layers = LayerStore(os.path.join(root, "layers"), "overlay", durable=durable)
        self.content = ContentStore(os.path.join(root, "content"))
        self.images = ImageStore(os.path.join(root, "images"), self.layers, self.content)

    def close(self) -> None:
        self.images.close()
        self.layers.close()


@contextmanager
def fresh_sampan(base: str, durable: bool) -> Iterator[Sampan]:
    root = tempfile.mkdtemp(dir=base)
    store = Sampan(root, durable)
    try:
        yield store
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def _mount_overlay(mount: Any, target: str) -> None:
    from sampan.kernel.mount import mount as kmount

    os.makedirs(target, exist_ok=True)
    kmount(mount.source, target, mount.type, 0, ",".join(mount.options))


def _umount(target: str) -> None:
    from sampan.kernel.mount import MNT_DETACH, umount

    umount(target, MNT_DETACH)


CONTAINER_SCRIPT = (
    "rm /etc/group && rm -r /usr && echo changed >> /etc/passwd && "
    "mkdir -p /opt && echo added > /opt/added"
)


def sampan_container_changes(root: str) -> None:
    """What CONTAINER_SCRIPT does in the docker container, done on our mounted rootfs."""
    os.unlink(root + "/etc/group")
    shutil.rmtree(root + "/usr")
    with open(root + "/etc/passwd", "a") as f:
        f.write("changed\n")
    os.makedirs(root + "/opt", exist_ok=True)
    with open(root + "/opt/added", "w") as f:
        f.write("added\n")


# -- timing -----------------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[float]] = {}
        self.order: list[str] = []

    def add(self, operation: str, engine: str, seconds: float) -> None:
        if operation not in self.order:
            self.order.append(operation)
        self.times.setdefault((operation, engine), []).append(seconds)

    def median(self, operation: str, engine: str) -> float | None:
        values = self.times.get((operation, engine))
        return statistics.median(values) if values else None


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_dockerd(api: DockerApi, results: Results, runs: int, scratch: str) -> None:
    for index in range(runs + 1):
        keep = index > 0  # the first round is a warm-up
        for name, archive in (("debian", DEBIAN), ("nginx", NGINX)):
            api.remove_all_images()
            seconds = timed(lambda a=archive: api.load(a))  # type: ignore[misc]
            if keep:
                results.add(f"load {name} (absent)", "dockerd", seconds)
            seconds = timed(lambda a=archive: api.load(a))  # type: ignore[misc]
            if keep:
                results.add(f"load {name} (present)", "dockerd", seconds)
        seconds = timed(lambda: api.save("nginx:bookworm"))
        if keep:
            results.add("save nginx", "dockerd", seconds)
        seconds = timed(lambda: api.import_rootfs(BUSYBOX_ROOTFS, "bench-imported"))
        if keep:
            results.add("import busybox", "dockerd", seconds)
        api.remove_image("bench-imported")
        api.load(BUSYBOX)
        container = f"bench-commit-{index}"
        api.run_to_exit(container, "busybox:latest", ["sh", "-c", CONTAINER_SCRIPT])
        seconds = timed(lambda c=container: api.commit(c, "bench-committed"))  # type: ignore[misc]
        if keep:
            results.add("commit busybox", "dockerd", seconds)
        api.remove_container(container)
        api.remove_image("bench-committed")


def bench_sampan(results: Results, runs: int, base: str, durable: bool) -> None:
    for index in range(runs + 1):
        keep = index > 0
        for name, archive in (("debian", DEBIAN), ("nginx", NGINX)):
            with fresh_sampan(base, durable) as store:
                seconds = timed(lambda s=store, a=archive: s.images.load(str(a)))  # type: ignore[misc]
                if keep:
                    results.add(f"load {name} (absent)", "sampan", seconds)
                seconds = timed(lambda s=store, a=archive: s.images.load(str(a)))  # type: ignore[misc]
                if keep:
                    results.add(f"load {name} (present)", "sampan", seconds)
                if name != "nginx":
                    continue

                def save(s: Sampan = store) -> None:
                    with s.images.save(["nginx:bookworm"]) as stream:
                        while stream.read(_CHUNK):
                            pass

                seconds = timed(save)
                if keep:
                    results.add("save nginx", "sampan", seconds)
                image_id = None

                def do_import(s: Sampan = store) -> None:
                    nonlocal image_id
                    image_id = s.images.import_rootfs(str(BUSYBOX_ROOTFS), "bench-imported")

                seconds = timed(do_import)
                if keep:
                    results.add("import busybox", "sampan", seconds)
                store.images.remove("bench-imported")
                store.images.load(str(BUSYBOX))
                container = f"bench-commit-{index}"
                top = store.images.top_chain_id(store.images.resolve("busybox:latest"))
                mounts = store.layers.create_rw(container, top)
                target = os.path.join(store.root, "rootfs")
                _mount_overlay(mounts[0], target)
                try:
                    sampan_container_changes(target)
                finally:
                    _umount(target)
                seconds = timed(
                    lambda s=store, c=container: s.images.commit(  # type: ignore[misc]
                        c, "busybox:latest", None, ref="bench-committed"
                    )
                )
                if keep:
                    results.add("commit busybox", "sampan", seconds)
                store.layers.remove_rw(container)


def base_layer_tar(scratch: str) -> str:
    """The uncompressed bookworm base layer, written once to ``scratch``."""
    path = os.path.join(scratch, "base-layer.tar")
    with gzip.open(DEBIAN) as plain, tarfile.open(fileobj=plain, mode="r|") as archive:
        for member in archive:
            if member.name == f"{BASE_DIFF_ID}.tar":
                source = archive.extractfile(member)
                assert source is not None
                with open(path, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                return path
    raise RuntimeError(f"no layer {BASE_DIFF_ID} in {DEBIAN}")


def bench_unpack(results: Results, runs: int, base: str, durable: bool) -> int:
    layer = base_layer_tar(base)
    size = os.path.getsize(layer)
    for index in range(runs + 1):
        root = tempfile.mkdtemp(dir=base)
        store = LayerStore(os.path.join(root, "layers"), "overlay", durable=durable)
        try:
            with open(layer, "rb") as f:
                seconds = timed(lambda f=f, s=store: s.register(f, None))  # type: ignore[misc]
            if index > 0:
                results.add("register base layer (77 MB tar)", "sampan", seconds)
        finally:
            store.close()
            shutil.rmtree(root, ignore_errors=True)
    os.unlink(layer)
    return size


# -- report -----------------------------------------------------------------------------------


def print_table(results: Results, runs: int, layer_size: int) -> None:
    print(f"\nmedian of {runs} runs, milliseconds; ratio = sampan / dockerd (< 1: sampan faster)\n")
    print(f"{'operation':<34} {'dockerd':>10} {'sampan':>10} {'ratio':>7}")
    print("-" * 64)
    for operation in results.order:
        docker = results.median(operation, "dockerd")
        ours = results.median(operation, "sampan")
        cells = [f"{v * 1000:10.0f}" if v is not None else f"{'-':>10}" for v in (docker, ours)]
        ratio = f"{ours / docker:7.2f}" if docker and ours else f"{'-':>7}"
        print(f"{operation:<34} {cells[0]} {cells[1]} {ratio}")
    print()
    unpack = results.median("register base layer (77 MB tar)", "sampan")
    if unpack:
        print(
            f"unpack of the base layer (register, uncompressed tar): "
            f"{layer_size / MB / unpack:6.1f} MB/s"
        )
    for engine in ("dockerd", "sampan"):
        load = results.median("load debian (absent)", engine)
        if load:
            print(
                f"load debian (absent), layer MB per second, {engine:>7}: "
                f"{layer_size / MB / load:6.1f} MB/s"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--no-durable",
        action="store_true",
        help="LayerStore(durable=False): no syncfs before a layer is recorded",
    )
    parser.add_argument("--only", choices=("sampan", "dockerd"), help="one engine only")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("graph_bench: run as root (overlay mounts, dockerd)", file=sys.stderr)
        return 2
    durable = not args.no_durable
    results = Results()
    with ExitStack() as cleanup:
        scratch = tempfile.mkdtemp(prefix="sampan-bench-", dir="/var/tmp")
        cleanup.callback(shutil.rmtree, scratch, True)
        if args.only != "sampan":
            stack = EngineStack(load_images=())
            cleanup.callback(stack.close)
            stack.start()
            api = DockerApi(str(stack.dockerd.socket))
            print(f"dockerd up (data-root {stack.dockerd.data_root})", file=sys.stderr)
            bench_dockerd(api, results, args.runs, scratch)
        if args.only != "dockerd":
            bench_sampan(results, args.runs, scratch, durable)
        size = os.path.getsize(DEBIAN)  # replaced by the layer's size when measured
        if args.only != "dockerd":
            size = bench_unpack(results, args.runs, scratch, durable)
    print_table(results, args.runs, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
