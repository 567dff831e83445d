"""The docker SDK for Python against the API server, over a fake daemon."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from tests.api_fake import RunningServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with RunningServer(str(tmp_path / "api.sock")) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[docker.DockerClient]:
    sdk = docker.DockerClient(base_url=server.url, version="auto", timeout=30)
    yield sdk
    sdk.close()


def test_api_version_is_negotiated_automatically(client: docker.DockerClient) -> None:
    assert client.api.api_version == "1.44"
    assert client.version()["ApiVersion"] == "1.44"
    assert client.ping() is True


def test_run_not_detached_returns_the_logs(client: docker.DockerClient) -> None:
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"


def test_run_nonzero_exit_raises_container_error(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"])
    assert info.value.exit_status == 4


def test_run_detached_list_logs_and_wait(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "100"], detach=True, name="sdk1")
    assert [c.name for c in client.containers.list()] == ["sdk1"]
    assert [c.name for c in client.containers.list(filters={"status": "running"})] == ["sdk1"]
    container.kill()
    assert container.wait()["StatusCode"] == 137
    container.reload()
    assert container.status == "exited"
    assert client.containers.list() == []
    assert len(client.containers.list(all=True)) == 1


def test_exec_run_demux_and_exit_code(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "100"], detach=True)
    result = container.exec_run(["sh", "-c", "echo a; echo b >&2; exit 2"], demux=True)
    assert result.exit_code == 2
    assert result.output == (b"a\n", b"b\n")


def test_attach_socket_carries_stdin_and_framed_output(client: docker.DockerClient) -> None:
    container = client.containers.create("busybox", ["cat"], stdin_open=True)
    sock = client.api.attach_socket(
        container.id, params={"stdin": 1, "stdout": 1, "stream": 1}
    )
    raw: socket.socket = sock._sock
    container.start()
    raw.sendall(b"ping\n")
    data = b""
    while len(data) < 13:
        part = raw.recv(4096)
        assert part, "attach ended before the echo came back"
        data += part
    sock.close()
    kind, size = struct.unpack(">BxxxI", data[:8])
    assert (kind, data[8 : 8 + size]) == (1, b"ping\n")
    container.reload()
    assert container.status == "running"


def test_events_generator_decodes_until(client: docker.DockerClient) -> None:
    since = time.time() - 1
    client.containers.run("busybox", ["true"], remove=True)
    events = list(
        client.events(since=int(since), until=int(time.time()) + 1, decode=True,
                      filters={"type": "container"})
    )
    actions = [event["Action"] for event in events]
    assert actions[:3] == ["create", "start", "die"]
    assert all(event["Type"] == "container" for event in events)


def test_stats_one_shot_has_precpu(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "100"], detach=True)
    stats = container.stats(stream=False)
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] > 0


def test_errors_map_to_sdk_exceptions(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nope")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothere:1")
    client.containers.create("busybox", name="taken")
    with pytest.raises(docker.errors.APIError) as conflict:
        client.containers.create("busybox", name="taken")
    assert conflict.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as bad:
        client.containers.create("busybox", name="x")
    assert bad.value.status_code == 400
    with pytest.raises(docker.errors.APIError) as wrong_type:
        client.api.create_container("busybox", host_config={"Memory": "lots"})
    assert wrong_type.value.status_code == 400
    assert client.ping() is True


def test_images_get_and_load(client: docker.DockerClient) -> None:
    image = client.images.get("busybox")
    data = b"".join(image.save())
    assert data.startswith(b"image sha256:")
    loaded = client.images.load(b"some archive bytes")
    assert [i.tags for i in loaded] == [["loaded:latest"]]
