"""Acceptance item 2: the docker SDK for Python (PyPI ``docker``) against a real sampand."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.utils.socket import frames_iter
from sampand_harness import BUSYBOX, Sampand, started_with_busybox


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture(scope="module")
def client(sampand: Sampand) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{sampand.socket_path}", version="auto")
    try:
        yield client
    finally:
        client.close()


def _track(sampand: Sampand, container: Any) -> Any:
    sampand.seen.add(container.id)
    return container


def test_version_negotiated(client: docker.DockerClient) -> None:
    negotiated = client.api.api_version
    advertised = client.version()["ApiVersion"]
    assert negotiated == advertised
    assert tuple(int(p) for p in negotiated.split(".")) >= (1, 44)
    components = client.version()["Components"][0]
    assert components["Name"] == "Engine"
    for key in ("GitCommit", "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime",
                "Experimental"):
        assert key in components["Details"], components
    assert client.ping() is True


def test_run_not_detached_returns_logs(sampand: Sampand, client: docker.DockerClient) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"],
                                network_mode="none", remove=True, stderr=True)
    assert out == b"out\nerr\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "exit 3"], network_mode="none",
                              remove=True)
    assert failed.value.exit_status == 3


def test_run_detached_logs_wait_inspect(sampand: Sampand, client: docker.DockerClient) -> None:
    container = _track(sampand, client.containers.run(
        "busybox", ["sh", "-c", "echo one; sleep 0.3; echo two"], detach=True,
        network_mode="none", labels={"suite": "sdk"}))
    assert container.wait(timeout=30) == {"StatusCode": 0, "Error": None}
    assert container.logs() == b"one\ntwo\n"
    assert container.logs(tail=1) == b"two\n"
    container.reload()
    assert container.status == "exited"
    assert container.labels == {"suite": "sdk"}
    assert container.attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert container.attrs["Config"]["Image"] == "busybox"
    found = client.containers.list(all=True, filters={"label": "suite=sdk"})
    assert [c.id for c in found] == [container.id]
    container.remove()


def test_exec_run_demux(sampand: Sampand, client: docker.DockerClient) -> None:
    container = _track(sampand, client.containers.run("busybox", ["sleep", "1000"],
                                                      detach=True, network_mode="none"))
    try:
        result = container.exec_run(["sh", "-c", "echo o; echo e >&2; exit 2"], demux=True)
        assert result.exit_code == 2
        assert result.output == (b"o\n", b"e\n")
        plain = container.exec_run(["echo", "hi"])
        assert (plain.exit_code, plain.output) == (0, b"hi\n")
        tty = container.exec_run(["tty"], tty=True)
        assert tty.output.startswith(b"/dev/pts/")
    finally:
        container.remove(force=True)


def test_attach_socket(sampand: Sampand, client: docker.DockerClient) -> None:
    container = _track(sampand, client.containers.create(
        "busybox", ["sh", "-c", "read line; echo got:$line"], stdin_open=True,
        network_mode="none"))
    try:
        sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        raw: socket.socket = sock._sock  # the hijacked connection
        container.start()
        raw.sendall(b"hello\n")
        frames = [data for _, data in frames_iter(sock, tty=False)]
        assert b"".join(frames) == b"got:hello\n"
        sock.close()
        assert container.wait(timeout=30)["StatusCode"] == 0
    finally:
        container.remove(force=True)


def test_attach_without_stdin_once_keeps_stdin_open(sampand: Sampand,
                                                    client: docker.DockerClient) -> None:
    # OpenStdin without StdinOnce (``docker run -d -i``): when an attacher's input ends the
    # attach ends, and cat's stdin stays open for the next attacher (Docker's rule).
    container = _track(sampand, client.containers.run("busybox", ["cat"], stdin_open=True,
                                                      detach=True, network_mode="none"))
    try:
        for word in (b"first", b"second"):
            sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
            raw: socket.socket = sock._sock
            raw.settimeout(20)
            raw.sendall(word + b"\n")
            raw.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := raw.recv(65536):  # the server ends the attach: EOF, no timeout
                received += chunk
            sock.close()
            container.reload()
            assert container.status == "running"
        sampand.wait_for("both words", lambda: container.logs() == b"first\nsecond\n")
    finally:
        container.remove(force=True)


def test_console_size_applies_to_the_tty(sampand: Sampand,
                                         client: docker.DockerClient) -> None:
    # HostConfig.ConsoleSize (the CLI sends its terminal's size) is the pty's first size.
    body = {"Image": "busybox", "Cmd": ["stty", "size"], "Tty": True,
            "HostConfig": {"NetworkMode": "none", "ConsoleSize": [25, 90]}}
    status, reply = sampand.request("POST", "/containers/create", json.dumps(body),
                                    {"Content-Type": "application/json"})
    assert status == 201, reply
    cid = json.loads(reply)["Id"]
    sampand.seen.add(cid)
    client.api.start(cid)
    assert client.api.wait(cid, timeout=30)["StatusCode"] == 0
    assert client.api.logs(cid) == b"25 90\r\n"
    client.api.remove_container(cid)


def test_stats(sampand: Sampand, client: docker.DockerClient) -> None:
    container = _track(sampand, client.containers.run("busybox", ["sleep", "1000"],
                                                      detach=True, network_mode="none"))
    try:
        one = container.stats(stream=False)
        assert one["id"] == container.id and one["name"] == "/" + container.name
        assert one["memory_stats"]["usage"] > 0
        assert one["precpu_stats"]["cpu_usage"]["total_usage"] >= 0
        assert one["pids_stats"]["current"] == 1
        stream = container.stats(decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
            first["cpu_stats"]["cpu_usage"]["total_usage"]
        stream.close()
    finally:
        container.remove(force=True)


def test_images_get_save_load(sampand: Sampand, client: docker.DockerClient,
                              tmp_path: Path) -> None:
    loaded = client.images.load(BUSYBOX.read_bytes())
    assert [image.tags for image in loaded] == [["busybox:latest"]]
    image = client.images.get("busybox")
    assert image.id == loaded[0].id
    assert image.attrs["Os"] == "linux"
    archive = tmp_path / "busybox.tar"
    with archive.open("wb") as handle:
        for chunk in image.save(named=True):
            handle.write(chunk)
    image.tag("sdk.test/again", "v2")
    assert "sdk.test/again:v2" in client.images.get("busybox").tags
    client.images.remove("sdk.test/again:v2")
    reloaded = client.images.load(archive.read_bytes())
    assert reloaded[0].id == image.id
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch:image")


def test_events_generator(sampand: Sampand, client: docker.DockerClient) -> None:
    since = time.time() - 1
    collected: list[dict[str, Any]] = []
    events = client.events(decode=True, since=since,
                           filters={"type": "container", "label": "evsdk=1"})

    def consume() -> None:
        for event in events:
            collected.append(event)
            if event.get("Action") == "destroy":
                return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    out = client.containers.run("busybox", ["true"], network_mode="none", remove=True,
                                labels={"evsdk": "1"})
    assert out == b""
    reader.join(30)
    events.close()
    actions = [event["Action"] for event in collected]
    assert actions[0] == "create" and actions[-1] == "destroy", actions
    assert {"start", "die"} <= set(actions), actions
    assert all(event["Actor"]["Attributes"]["evsdk"] == "1" for event in collected)
