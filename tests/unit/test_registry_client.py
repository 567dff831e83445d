"""The registry client's pure parts: manifests and platforms, credentials and challenges,
progress messages, insecure registries, pull references."""

from __future__ import annotations

import base64
import json

import pytest

from sampan import errdefs
from sampan.daemon.distribution import pull_reference
from sampan.drivers.graph.registry import manifests, progress
from sampan.drivers.graph.registry.auth import (
    auth_config_from_json,
    decode_registry_auth,
    parse_challenges,
)
from sampan.drivers.graph.registry.hosts import RegistryHosts
from sampan.drivers.graph.registry.login import registry_host
from sampan.drivers.graph.registry.push import PushedLayer, manifest_for

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _index(*platforms: dict[str, str]) -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:" + f"{number:x}" * 64, "size": 100, "platform": platform}
            for number, platform in enumerate(platforms, start=1)
        ],
    }).encode()


def test_index_resolves_to_the_wanted_platform_and_variant() -> None:
    index = manifests.parse_manifest(_index(
        {"os": "linux", "architecture": "arm", "variant": "v6"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
    ), "", "x")
    assert isinstance(index, manifests.ManifestIndex)
    choose = manifests.choose
    assert choose(index, manifests.parse_platform("linux/amd64"), "x").digest[7] == "3"
    assert choose(index, manifests.parse_platform("linux/arm64"), "x").digest[7] == "2"
    assert choose(index, manifests.parse_platform("linux/arm/v7"), "x").digest[7] == "4"
    assert choose(index, manifests.parse_platform("linux/arm"), "x").digest[7] == "4"
    with pytest.raises(errdefs.NotFound, match="no matching manifest for linux/s390x"):
        choose(index, manifests.parse_platform("linux/s390x"), "x")


def test_entries_without_a_platform_are_never_chosen() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "digest": DIGEST, "size": 1}]}).encode()
    index = manifests.parse_manifest(data, "", "x")
    assert isinstance(index, manifests.ManifestIndex)
    with pytest.raises(errdefs.NotFound):
        manifests.choose(index, manifests.parse_platform("linux/amd64"), "x")


def test_schema1_manifests_are_refused_clearly() -> None:
    with pytest.raises(errdefs.NotImplementedFeature, match="schema 1"):
        manifests.parse_manifest(b'{"schemaVersion": 1, "fsLayers": []}', "", "old:1")
    with pytest.raises(errdefs.NotImplementedFeature, match="schema 1"):
        manifests.parse_manifest(b"{}", manifests.SCHEMA1_SIGNED, "old:1")


def test_image_manifest_descriptors_are_checked() -> None:
    good = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": DIGEST, "size": 10},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": OTHER, "size": 20}]}
    parsed = manifests.parse_manifest(json.dumps(good).encode(), "", "x")
    assert isinstance(parsed, manifests.ImageManifest)
    assert parsed.layers[0] == manifests.Descriptor(
        "application/vnd.docker.image.rootfs.diff.tar.gzip", OTHER, 20)
    bad = dict(good, layers=[{"digest": "sha512:" + "a" * 128, "size": 1}])
    with pytest.raises(errdefs.InvalidParameter, match="digest"):
        manifests.parse_manifest(json.dumps(bad).encode(), "", "x")
    artifact = dict(good, layers=[{"mediaType": "application/vnd.example.sbom", "digest": OTHER,
                                   "size": 1}])
    with pytest.raises(errdefs.InvalidParameter, match="unsupported media type"):
        manifests.parse_manifest(json.dumps(artifact).encode(), "", "x")


def test_single_platform_image_must_match_the_platform_asked_for() -> None:
    manifests.check_config_platform({"os": "linux", "architecture": "amd64"}, None, "x")
    with pytest.raises(errdefs.NotFound, match="does not match the specified platform"):
        manifests.check_config_platform({"os": "linux", "architecture": "amd64"},
                                        manifests.parse_platform("linux/arm64"), "x")


def test_registry_auth_header_decodes_dockers_encodings() -> None:
    assert decode_registry_auth("e30=").empty
    assert decode_registry_auth(None).empty
    payload = json.dumps({"username": "u", "password": "p?>", "serveraddress": "r:5000"})
    unpadded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    auth = decode_registry_auth(unpadded)
    assert (auth.username, auth.password, auth.server_address) == ("u", "p?>", "r:5000")
    from_auth_field = auth_config_from_json({"auth": base64.b64encode(b"me:pw:x").decode()})
    assert (from_auth_field.username, from_auth_field.password) == ("me", "pw:x")
    with pytest.raises(errdefs.InvalidParameter):
        decode_registry_auth("!!!not-base64")


def test_www_authenticate_challenges_are_parsed() -> None:
    [bearer] = parse_challenges([
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push"'])
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull,push"}
    [basic] = parse_challenges(['Basic realm="x \\"quoted\\""'])
    assert (basic.scheme, basic.params) == ("basic", {"realm": 'x "quoted"'})


def test_progress_text_matches_dockers_rendering() -> None:
    # From wire/distribution.md.
    assert progress.progress_bar(36445, 1068875) == (
        "[=>" + " " * 49 + "]  36.45kB/1.069MB")
    assert progress.progress_bar(1068875, 1068875) == "[" + "=" * 50 + ">]  1.069MB/1.069MB"
    assert progress.progress_bar(2140160, 1984302) == "[" + "=" * 50 + ">]   2.14MB"
    emitted: list[progress.Message] = []
    meter = progress.Meter(emitted.append, "Downloading", "abc", 2_000_000)
    for _ in range(20):
        meter.add(100_000)
    meter.finish()
    assert [m["progressDetail"]["current"] for m in emitted] == [600_000, 1_200_000,
                                                                 1_800_000, 2_000_000]


def test_loopback_and_configured_registries_are_insecure() -> None:
    hosts = RegistryHosts(["10.1.0.0/16", "registry.local:5000"], certs_dir="/nonexistent")
    assert hosts.is_insecure("127.0.0.1:5000")
    assert hosts.is_insecure("10.1.2.3")
    assert hosts.is_insecure("registry.local:5000")
    assert not hosts.is_insecure("10.2.0.1:5000")
    assert [e.scheme for e in hosts.endpoints("127.0.0.1:5000")] == ["https", "http"]
    assert [e.base_url for e in hosts.endpoints("docker.io")] == ["https://registry-1.docker.io"]


def test_pull_reference_combines_from_image_and_tag_like_docker() -> None:
    assert str(pull_reference("busybox", "")) == "docker.io/library/busybox:latest"
    assert str(pull_reference("r:5000/a/b", "1")) == "r:5000/a/b:1"
    assert str(pull_reference("r:5000/a", DIGEST)) == f"r:5000/a@{DIGEST}"
    assert str(pull_reference("busybox:1", "")) == "docker.io/library/busybox:1"
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000/") == "127.0.0.1:5000"


def test_pushed_manifest_is_docker_schema2_in_dockerds_layout() -> None:
    body, media_type = manifest_for(
        PushedLayer(DIGEST, "application/vnd.docker.container.image.v1+json", 1469),
        [PushedLayer(OTHER, "application/vnd.oci.image.layer.v1.tar+gzip", 1068875)])
    assert media_type == "application/vnd.docker.distribution.manifest.v2+json"
    document = json.loads(body)
    assert document["layers"][0]["mediaType"] == (
        "application/vnd.docker.image.rootfs.diff.tar.gzip")
    assert body.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType"')
