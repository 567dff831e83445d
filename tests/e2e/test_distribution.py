"""Pull and push through sampand against Debian's docker-registry (issue 6, acceptance 1 and 4).

One open registry for the module; sampand ``source`` holds the shared images and pushes them,
clean sampands pull them back. Faults: the registry killed mid-pull (through a proxy that
cuts every connection), and a blob whose bytes do not match its digest.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import CuttingProxy, Registries, RegistryProcess
from sampand_harness import BUSYBOX, SHARED_IMAGES, Sampand

from sampan.drivers.graph.images.reference import parse_normalized
from sampan.drivers.graph.registry.auth import AuthConfig
from sampan.drivers.graph.registry.blobcache import BlobMap
from sampan.drivers.graph.registry.hosts import RegistryHosts
from sampan.drivers.graph.registry.push import Pusher
from sampan.drivers.graph.registry.session import RegistryClient

ARCHIVES = {
    "busybox:latest": BUSYBOX,
    "debian:bookworm-slim": SHARED_IMAGES / "debian.tar.gz",
    "nginx:bookworm": SHARED_IMAGES / "nginx.tar.gz",
    "redis:bookworm": SHARED_IMAGES / "redis.tar.gz",
}


@pytest.fixture(scope="module")
def registries() -> Iterator[Registries]:
    found = Registries()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def registry(registries: Registries) -> RegistryProcess:
    return registries.start("open")


@pytest.fixture(scope="module")
def source(registry: RegistryProcess) -> Iterator[Sampand]:
    """A sampand with every shared image loaded and pushed to the open registry."""
    with Sampand() as daemon:
        for path in ARCHIVES.values():
            daemon.ok("load", "-i", str(path), timeout=180)
        for name in ARCHIVES:
            daemon.ok("tag", name, f"{registry.address}/{name}")
            daemon.ok("push", f"{registry.address}/{name}", timeout=180)
        yield daemon


def layer_blobs(registry: RegistryProcess, repository: str, tag: str) -> list[dict[str, Any]]:
    """The layer descriptors of the manifest the registry holds (what sampand pushed)."""
    status, _, body = registry.request(
        "GET", f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200
    layers: list[dict[str, Any]] = json.loads(body)["layers"]
    return layers


def api_stream(daemon: Sampand, path: str, headers: dict[str, str] | None = None
               ) -> tuple[int, list[dict[str, Any]]]:
    status, body = daemon.request("POST", path, headers=headers, timeout=300)
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    return status, lines


def pull_api(daemon: Sampand, image: str, tag: str, platform: str = ""
             ) -> tuple[int, list[dict[str, Any]]]:
    query = {"fromImage": image, "tag": tag}
    if platform:
        query["platform"] = platform
    return api_stream(daemon, "/images/create?" + urllib.parse.urlencode(query))


def test_shared_images_round_trip_with_identical_ids_and_digests(
        registry: RegistryProcess, source: Sampand) -> None:
    with Sampand() as clean:
        for name in ARCHIVES:
            remote = f"{registry.address}/{name}"
            clean.ok("pull", remote, timeout=300)
            pushed, pulled = source.inspect(remote), clean.inspect(remote)
            assert pulled["Id"] == pushed["Id"]
            assert pulled["RootFS"]["Layers"] == pushed["RootFS"]["Layers"]
            assert pulled["RepoDigests"] == pushed["RepoDigests"]
            assert len(pulled["RepoDigests"]) == 1
            assert pulled["Config"]["Cmd"] == pushed["Config"]["Cmd"]
        ran = clean.ok("run", "--rm", "--network", "none", f"{registry.address}/busybox:latest",
                       "sh", "-c", "echo pulled-ok")
        assert ran == "pulled-ok\n"
        ran = clean.ok("run", "--rm", "--network", "none",
                       f"{registry.address}/nginx:bookworm", "sh", "-c", "nginx -v 2>&1")
        assert ran.startswith("nginx version: nginx/1.22.1")


def test_pull_by_digest_records_the_digest_reference(
        registry: RegistryProcess, source: Sampand) -> None:
    remote = f"{registry.address}/redis:bookworm"
    digest = source.inspect(remote)["RepoDigests"][0].partition("@")[2]
    with Sampand() as clean:
        clean.ok("pull", f"{registry.address}/redis@{digest}", timeout=300)
        pulled = clean.inspect(f"{registry.address}/redis@{digest}")
        assert pulled["Id"] == source.inspect(remote)["Id"]
        assert pulled["RepoTags"] == []
        assert pulled["RepoDigests"] == [f"{registry.address}/redis@{digest}"]


def test_pull_progress_messages_follow_dockers_sequence(
        registry: RegistryProcess, source: Sampand) -> None:
    with Sampand() as clean:
        status, messages = pull_api(clean, f"{registry.address}/nginx", "bookworm")
        assert status == 200
        assert messages[0] == {"status": "Pulling from nginx", "id": "bookworm"}
        assert not any("error" in m or "errorDetail" in m for m in messages)
        by_layer: dict[str, list[str]] = {}
        for message in messages[1:]:
            if "id" in message:
                by_layer.setdefault(message["id"], []).append(message["status"])
        assert len(by_layer) == 2
        for statuses in by_layer.values():
            assert statuses[0] == "Pulling fs layer"
            assert "Downloading" in statuses and "Extracting" in statuses
            order = ["Verifying Checksum", "Download complete", "Pull complete"]
            assert [s for s in statuses if s in order] == order
        downloading = [m for m in messages if m.get("status") == "Downloading"]
        assert all(0 < m["progressDetail"]["current"] <= m["progressDetail"]["total"]
                   for m in downloading)
        digest = source.inspect(f"{registry.address}/nginx:bookworm")["RepoDigests"][0]
        assert messages[-2] == {"status": f"Digest: {digest.partition('@')[2]}"}
        assert messages[-1] == {
            "status": f"Status: Downloaded newer image for {registry.address}/nginx:bookworm"}
        # Again: nothing to do. Then a sibling image: the shared base layer already exists.
        _, again = pull_api(clean, f"{registry.address}/nginx", "bookworm")
        assert again[-1]["status"] == (
            f"Status: Image is up to date for {registry.address}/nginx:bookworm")
        assert not any(m.get("status") == "Downloading" for m in again)
        _, sibling = pull_api(clean, f"{registry.address}/redis", "bookworm")
        base = layer_blobs(registry, "redis", "bookworm")[0]["digest"]
        assert base == layer_blobs(registry, "nginx", "bookworm")[0]["digest"]
        assert {"status": "Already exists", "progressDetail": {}, "id": base[7:19]} in sibling


def test_unknown_tag_is_a_404_before_the_stream(registry: RegistryProcess, source: Sampand) -> None:
    status, body = source.request(
        "POST", f"/images/create?fromImage={registry.address}%2Fbusybox&tag=nope")
    assert status == 404
    assert json.loads(body)["message"] == (
        f"manifest for {registry.address}/busybox:nope not found: manifest unknown: "
        "manifest unknown")


def test_run_of_an_absent_image_pulls_it(registry: RegistryProcess, source: Sampand) -> None:
    with Sampand() as clean:
        result = clean.docker("run", "--rm", "--network", "none",
                              f"{registry.address}/busybox", "echo", "auto-pulled")
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"auto-pulled\n"
        assert b"Unable to find image" in result.stderr
        assert clean.inspect(f"{registry.address}/busybox:latest")["Id"] == (
            source.inspect("busybox:latest")["Id"])


def _put_index(registry: RegistryProcess, source: Sampand) -> tuple[str, str]:
    """An OCI index for ``multi:1``: a fake linux/arm64/v8 image and busybox as
    linux/amd64; returns the two image IDs (arm64, amd64)."""
    busybox = source.inspect(f"{registry.address}/busybox:latest")
    digest = busybox["RepoDigests"][0].partition("@")[2]
    status, headers, amd64_manifest = registry.request(
        "GET", f"/v2/busybox/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200
    amd64 = json.loads(amd64_manifest)
    # Make the blobs reachable from repository "multi" (mount) and add an arm64 config.
    for blob in [amd64["config"], *amd64["layers"]]:
        mounted, _, _ = registry.request(
            "POST", f"/v2/multi/blobs/uploads/?mount={blob['digest']}&from=busybox", b"")
        assert mounted == 201
    config = json.loads(
        registry.request("GET", f"/v2/busybox/blobs/{amd64['config']['digest']}")[2])
    config["architecture"], config["variant"] = "arm64", "v8"
    config_bytes = json.dumps(config).encode()
    config_digest = registry.put_blob("multi", config_bytes)
    status, _, _ = registry.request(
        "PUT", "/v2/multi/manifests/amd", amd64_manifest,
        {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 201
    arm64 = dict(amd64, config=dict(amd64["config"], digest=config_digest,
                                    size=len(config_bytes)))
    arm64_bytes = json.dumps(arm64).encode()
    status, headers, _ = registry.request(
        "PUT", "/v2/multi/manifests/arm", arm64_bytes,
        {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 201
    arm64_digest = headers["Docker-Content-Digest"]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": arm64_digest, "size": len(arm64_bytes),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": digest, "size": len(amd64_manifest),
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    status, _, _ = registry.request(
        "PUT", "/v2/multi/manifests/1", json.dumps(index).encode(),
        {"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert status == 201
    return config_digest, busybox["Id"]


def test_multi_platform_index_resolves_to_linux_amd64(
        registry: RegistryProcess, source: Sampand) -> None:
    arm64_id, amd64_id = _put_index(registry, source)
    with Sampand() as clean:
        clean.ok("pull", f"{registry.address}/multi:1")
        pulled = clean.inspect(f"{registry.address}/multi:1")
        assert pulled["Id"] == amd64_id
        assert pulled["Architecture"] == "amd64"
        # The RepoDigest names the index (what the tag points at), as with dockerd.
        status, headers, _ = registry.request(
            "HEAD", "/v2/multi/manifests/1",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        assert pulled["RepoDigests"] == [
            f"{registry.address}/multi@{headers['Docker-Content-Digest']}"]
        clean.ok("pull", "--platform", "linux/arm64", f"{registry.address}/multi:1")
        chosen = clean.inspect(f"{registry.address}/multi:1")
        assert chosen["Id"] == arm64_id
        assert (chosen["Architecture"], chosen["Variant"]) == ("arm64", "v8")
        status, body = clean.request(
            "POST", f"/images/create?fromImage={registry.address}%2Fmulti&tag=1"
                    "&platform=linux%2Fs390x")
        assert status == 404
        assert "no matching manifest for linux/s390x" in json.loads(body)["message"]


def test_push_again_reports_existing_layers_and_mounts_across_repositories(
        registry: RegistryProcess, source: Sampand) -> None:
    remote = f"{registry.address}/busybox:latest"
    status, messages = api_stream(source, f"/images/{remote.rpartition(':')[0]}/push?tag=latest")
    assert status == 200
    statuses = [m.get("status") for m in messages]
    assert statuses[0] == f"The push refers to repository [{registry.address}/busybox]"
    assert "Layer already exists" in statuses and "Pushed" not in statuses
    digest = source.inspect(remote)["RepoDigests"][0].partition("@")[2]
    assert messages[-1]["aux"] == {"Tag": "latest", "Digest": digest, "Size": 528}
    source.ok("tag", "busybox", f"{registry.address}/elsewhere/bb:2")
    _, mounted = api_stream(source, f"/images/{registry.address}/elsewhere/bb/push?tag=2")
    assert {"status": "Mounted from busybox", "progressDetail": {},
            "id": source.inspect("busybox")["RootFS"]["Layers"][0][7:19]} in mounted
    assert mounted[-1]["aux"]["Digest"] == digest  # same blobs, same manifest bytes


def test_push_of_a_missing_image_fails_in_band(registry: RegistryProcess, source: Sampand) -> None:
    result = source.docker("push", f"{registry.address}/nothing-here:1")
    assert result.returncode != 0
    assert b"An image does not exist locally with the tag" in result.stderr


def test_registry_killed_mid_pull_leaves_no_image_and_the_retry_reuses_blobs(
        registries: Registries, registry: RegistryProcess, source: Sampand) -> None:
    state: dict[str, bool] = {"cut": False}
    base, small_layer = layer_blobs(registry, "nginx", "bookworm")
    big_request = f"GET /v2/nginx/blobs/{base['digest']}"
    small_request = f"GET /v2/nginx/blobs/{small_layer['digest']}"

    def cut_midway(proxy: CuttingProxy) -> None:
        small = proxy.sent_after.get(small_request, 0)
        big = proxy.sent_after.get(big_request, 0)
        if not state["cut"] and small > small_layer["size"] and big > 12_000_000:
            state["cut"] = True
            registry.kill()
            proxy.cut()

    proxy = CuttingProxy(registry.port, cut_midway)
    registries.proxies.append(proxy)
    image = f"{proxy.address}/nginx:bookworm"
    with Sampand() as clean:
        try:
            failed = clean.docker("pull", image, timeout=120)
            assert state["cut"], "the proxy never cut the pull"
            assert failed.returncode != 0
            error = failed.stderr.decode()
            assert "Get \"http://" in error or "download of" in error, error
            assert clean.ok("images", "-aq") == ""
            assert clean.docker("image", "inspect", image).returncode != 0
        finally:
            registry.start()
        proxy.resume()
        before = len(proxy.requests)
        clean.ok("pull", image, timeout=120)
        retried = proxy.requests[before:]
        assert small_request not in retried
        assert big_request in retried
        assert clean.inspect(image)["Id"] == source.inspect("nginx:bookworm")["Id"]
        assert clean.ok("run", "--rm", "--network", "none", image, "cat",
                        "/var/www/html/index.html") != ""


def test_a_blob_with_the_wrong_digest_is_refused(
        registries: Registries, source: Sampand) -> None:
    corrupt = registries.start("corrupt")
    source.ok("tag", "busybox", f"{corrupt.address}/busybox:bad")
    source.ok("push", f"{corrupt.address}/busybox:bad")
    layer_digest = json.loads(corrupt.request(
        "GET", "/v2/busybox/manifests/bad",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})[2]
    )["layers"][0]["digest"]
    blob = corrupt.blob_path(layer_digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the digest can tell
    blob.write_bytes(bytes(data))
    with Sampand() as clean:
        result = clean.docker("pull", f"{corrupt.address}/busybox:bad")
        assert result.returncode != 0
        assert f"filesystem layer verification failed for digest {layer_digest}".encode() in (
            result.stderr)
        assert clean.ok("images", "-aq") == ""


def test_chunked_upload_sends_content_range_patches(registry: RegistryProcess,
                                                    tmp_path: Path) -> None:
    """The distribution spec's chunked upload (several ``PATCH``es with ``Content-Range``),
    driven through the pusher directly with an in-memory image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        payload = os.urandom(300_000)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    layer_tar = buffer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    digests: list[str] = []

    class Store:
        def resolve(self, name: str) -> str:
            return image_id

        def config_bytes(self, _: str) -> bytes:
            return config

        def chain_ids(self, _: str) -> list[str]:
            return [diff_id]

        def list(self, *args: Any) -> list[dict[str, Any]]:
            return []

        def add_repo_digest(self, name: str, _: str) -> None:
            digests.append(name)

    class Layers:
        def diff_tar(self, _: str) -> io.BytesIO:
            return io.BytesIO(layer_tar)

        def get(self, _: str) -> Any:
            return type("Layer", (), {"size": len(layer_tar)})()

    async def push() -> list[dict[str, Any]]:
        client = RegistryClient(RegistryHosts(certs_dir=str(tmp_path)))
        blob_map = BlobMap(str(tmp_path / "blobs.db"))
        pusher = Pusher(client, Store(), Layers(), blob_map, chunk_size=64 * 1024)
        messages: list[dict[str, Any]] = []
        try:
            await pusher.push(parse_normalized(f"{registry.address}/chunked:1"),
                              AuthConfig(), messages.append)
        finally:
            await client.close()
            blob_map.close()
        return messages

    messages = asyncio.run(push())
    assert messages[-1]["aux"]["Tag"] == "1"
    assert digests == [f"{registry.address}/chunked@{messages[-1]['aux']['Digest']}"]
    [layer] = layer_blobs(registry, "chunked", "1")
    assert layer["size"] > 4 * 64 * 1024  # it took several chunks
    status, _, blob = registry.request("GET", f"/v2/chunked/blobs/{layer['digest']}")
    assert status == 200
    assert gzip.decompress(blob) == layer_tar
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
