#!/usr/bin/env python3
"""Image store vs real dockerd: load, save, import, commit; prints a table (not a test).

Both engines run in one go on the same disk, round by round (a round: dockerd, then sampan;
round 0 is an untimed warm-up):

* **dockerd**: private containerd + dockerd started with the e2e harness
  (``tests/e2e/dockerd_harness.EngineStack``: own socket, data-root under ``/tmp/sx.XXXXXX``,
  overlay2, nothing preloaded), two fresh ones per round (one for debian, one for the rest).
  Timed through its Engine API on the unix socket (no docker CLI start-up in the numbers):
  ``POST /images/load``, ``GET /images/get``, ``POST /images/create?fromSrc=-``,
  ``POST /commit``.
* **sampan**: ``ImageStore`` in this process over ``LayerStore(driver="overlay")`` and a
  ``ContentStore`` under ``/var/tmp/sampan-bench-XXXXXX``.

Nothing is removed before the last timing (see ``main``: on this host's ext4, creating files
just after many were deleted is slow, and that must not bill one engine for the other's
clean-up). Operations (median of ``--runs`` rounds):

==================  =========================================================================
load X (absent)     X into a fresh, empty dockerd / store
load X (present)    the same archive again, every layer already there
save nginx          the archive of ``nginx:bookworm`` read to the end (and dropped)
import busybox      ``busybox-rootfs.tar`` as a one-layer image (its layer absent)
commit busybox      a busybox container that deleted a file and a directory, changed a file
                    and added one, committed (the container is made outside the timing)
==================  =========================================================================

Then the unpack throughput of the 77 MB bookworm base layer: ``LayerStore.register`` of the
uncompressed layer tar into a fresh store, given as a file (what ``load`` and ``commit`` hand
over: kernel copies) and as a plain stream; and ``load debian (absent)`` of both engines as
MB (uncompressed layer bytes) per second.

Usage: ``python3 bench/graph_bench.py [--runs 3] [--no-durable] [--only sampan] [--dir D]``
as root.
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
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from dockerd_harness import EngineStack  # noqa: E402

from sampan.drivers.graph import ContentStore, LayerStore  # noqa: E402
from sampan.drivers.graph.images import ImageStore  # noqa: E402

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[1].parent / "shared" / "images"))
IMAGES = Path(_SHARED_IMAGES)
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


def bench_dockerd_round(
    stacks: ExitStack, results: Results, keep: bool, round_index: int
) -> None:
    """One round on two fresh dockerds (debian; nginx and the rest): absent means absent."""

    def fresh() -> DockerApi:
        stack = EngineStack(load_images=())
        stacks.callback(stack.close)
        stack.start()
        time.sleep(1)  # let start-up work (containerd plugins, dockerd's own setup) settle
        return DockerApi(str(stack.dockerd.socket))

    def record(operation: str, seconds: float) -> None:
        if keep:
            results.add(operation, "dockerd", seconds)

    api = fresh()
    record("load debian (absent)", timed(lambda: api.load(DEBIAN)))
    record("load debian (present)", timed(lambda: api.load(DEBIAN)))
    api = fresh()
    record("load nginx (absent)", timed(lambda: api.load(NGINX)))
    record("load nginx (present)", timed(lambda: api.load(NGINX)))
    record("save nginx", timed(lambda: api.save("nginx:bookworm")))
    record("import busybox", timed(lambda: api.import_rootfs(BUSYBOX_ROOTFS, "bench-imported")))
    api.load(BUSYBOX)
    container = f"bench-commit-{round_index}"
    api.run_to_exit(container, "busybox:latest", ["sh", "-c", CONTAINER_SCRIPT])
    record("commit busybox", timed(lambda: api.commit(container, "bench-committed")))


def bench_sampan_round(
    stores: ExitStack, results: Results, keep: bool, base: str, durable: bool, round_index: int
) -> None:
    """The same round on two fresh stores of ours, in this process."""

    def fresh() -> Sampan:
        store = Sampan(tempfile.mkdtemp(dir=base), durable)
        stores.callback(shutil.rmtree, store.root, True)
        stores.callback(store.close)
        return store

    def record(operation: str, seconds: float) -> None:
        if keep:
            results.add(operation, "sampan", seconds)

    store = fresh()
    record("load debian (absent)", timed(lambda: store.images.load(str(DEBIAN))))
    record("load debian (present)", timed(lambda: store.images.load(str(DEBIAN))))
    store = fresh()
    record("load nginx (absent)", timed(lambda: store.images.load(str(NGINX))))
    record("load nginx (present)", timed(lambda: store.images.load(str(NGINX))))

    def save() -> None:
        with store.images.save(["nginx:bookworm"]) as stream:
            while stream.read(_CHUNK):
                pass

    record("save nginx", timed(save))
    record("import busybox", timed(
        lambda: store.images.import_rootfs(str(BUSYBOX_ROOTFS), "bench-imported")
    ))
    store.images.load(str(BUSYBOX))
    container = f"bench-commit-{round_index}"
    top = store.images.top_chain_id(store.images.resolve("busybox:latest"))
    mounts = store.layers.create_rw(container, top)
    target = os.path.join(store.root, "rootfs")
    _mount_overlay(mounts[0], target)
    try:
        sampan_container_changes(target)
    finally:
        _umount(target)
    record("commit busybox", timed(
        lambda: store.images.commit(container, "busybox:latest", None, ref="bench-committed")
    ))


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


def bench_unpack(
    stores: ExitStack, results: Results, keep: bool, base: str, durable: bool, layer: str
) -> None:
    """register() of the base layer tar: from the file, and as a stream (a pipe, say)."""

    class Stream:  # only read(): the layer store cannot tell it is a file
        def __init__(self, f: BinaryIO) -> None:
            self.read = f.read

    for label, wrap in (("file", lambda f: f), ("stream", Stream)):
        root = tempfile.mkdtemp(dir=base)
        stores.callback(shutil.rmtree, root, True)
        store = LayerStore(os.path.join(root, "layers"), "overlay", durable=durable)
        stores.callback(store.close)
        with open(layer, "rb") as f:
            seconds = timed(lambda f=f, s=store, w=wrap: s.register(w(f), None))  # type: ignore[misc]
        if keep:
            results.add(f"register base layer ({label})", "sampan", seconds)


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
    for label in ("file", "stream"):
        unpack = results.median(f"register base layer ({label})", "sampan")
        if unpack:
            print(
                f"unpack of the 77 MB base layer, register from a {label:<6}: "
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
    parser.add_argument("--dir", default="/var/tmp",
                        help="where sampan's stores go (dockerd's data-root: under /tmp)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("graph_bench: run as root (overlay mounts, dockerd)", file=sys.stderr)
        return 2
    durable = not args.no_durable
    results = Results()
    with ExitStack() as cleanup:
        scratch = tempfile.mkdtemp(prefix="sampan-bench-", dir=args.dir)
        cleanup.callback(shutil.rmtree, scratch, True)
        layer = base_layer_tar(scratch)
        size = os.path.getsize(layer)
        # Nothing is deleted until every timing is taken (the ExitStack unwinds at the end):
        # on ext4 without a journal, as here, creating files right after many were deleted
        # costs up to ~1 ms each (the inode allocator skips "recently deleted" inodes,
        # fs/ext4/ialloc.c), which would bill one engine for the other's clean-up.
        for index in range(args.runs + 1):
            keep = index > 0  # round 0 is a warm-up (page cache, first starts)
            print(f"round {index}/{args.runs}{'' if keep else ' (warm-up)'}", file=sys.stderr)
            if args.only != "sampan":
                bench_dockerd_round(cleanup, results, keep, index)
            if args.only != "dockerd":
                bench_sampan_round(cleanup, results, keep, scratch, durable, index)
                bench_unpack(cleanup, results, keep, scratch, durable, layer)
        print("cleaning up", file=sys.stderr)
    print_table(results, args.runs, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
