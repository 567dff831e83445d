"""The API server over a fake daemon, driven with raw HTTP on a temporary unix socket."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.api_fake import RunningServer


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=20)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(20)
        sock.connect(self.unix_path)
        self.sock = sock


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with RunningServer(str(tmp_path / "api.sock")) as running:
        yield running


def request(
    server: RunningServer, method: str, path: str, body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = UnixHTTPConnection(server.socket_path)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response, payload


def raw_exchange(server: RunningServer, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(server.socket_path)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except BrokenPipeError:
            pass  # the server answered and closed before reading everything
        chunks = []
        while True:
            part = sock.recv(65536)
            if not part:
                return b"".join(chunks)
            chunks.append(part)


def create(server: RunningServer, cmd: list[str], **config: Any) -> str:
    response, body = request(
        server, "POST", "/v1.44/containers/create", {"Image": "busybox", "Cmd": cmd, **config}
    )
    assert response.status == 201, body
    return str(json.loads(body)["Id"])


def test_head_ping_has_the_headers_the_cli_reads_and_no_body(server: RunningServer) -> None:
    response, body = request(server, "HEAD", "/_ping")
    assert response.status == 200
    assert body == b""
    assert response.getheader("Api-Version") == "1.44"
    assert response.getheader("Ostype") == "linux"
    assert response.getheader("Docker-Experimental") == "false"
    assert response.getheader("Swarm") == "inactive"
    assert response.getheader("Content-Length") == "0"
    response, body = request(server, "GET", "/v1.30/_ping")
    assert (response.status, body) == (200, b"OK")


def test_version_is_negotiated_and_too_new_is_400(server: RunningServer) -> None:
    response, body = request(server, "GET", "/version")
    assert json.loads(body)["ApiVersion"] == "1.44"
    assert json.loads(body)["MinAPIVersion"] == "1.24"
    response, body = request(server, "GET", "/v1.99/version")
    assert response.status == 400
    assert json.loads(body)["message"] == (
        "client version 1.99 is too new. Maximum supported API version is 1.44"
    )
    response, body = request(server, "GET", "/v1.12/version")
    assert response.status == 400


def test_unknown_path_is_404_json_and_wrong_method_405(server: RunningServer) -> None:
    response, body = request(server, "GET", "/v1.44/nothing/here")
    assert response.status == 404
    assert "message" in json.loads(body)
    response, body = request(server, "PUT", "/v1.44/containers/json")
    assert response.status == 405
    assert "message" in json.loads(body)


def test_swarm_is_503_and_plugins_empty(server: RunningServer) -> None:
    response, body = request(server, "GET", "/v1.44/swarm")
    assert response.status == 503
    response, _ = request(server, "POST", "/v1.44/services/create", {})
    assert response.status == 503
    response, body = request(server, "GET", "/v1.44/plugins")
    assert (response.status, json.loads(body)) == (200, [])


def test_error_codes_and_bodies(server: RunningServer) -> None:
    response, body = request(server, "GET", "/v1.44/containers/nope/json")
    assert (response.status, json.loads(body)) == (404, {"message": "No such container: nope"})
    response, body = request(server, "POST", "/v1.44/containers/create", {"Image": "alpine"})
    assert (response.status, json.loads(body)["message"]) == (
        404, "No such image: alpine:latest"
    )
    create(server, ["sleep", "1"], **{"HostConfig": {}})
    response, body = request(
        server, "POST", "/v1.44/containers/create?name=dup", {"Image": "busybox"}
    )
    assert response.status == 201
    response, body = request(
        server, "POST", "/v1.44/containers/create?name=dup", {"Image": "busybox"}
    )
    assert response.status == 409
    assert "already in use" in json.loads(body)["message"]
    response, body = request(
        server, "POST", "/v1.44/containers/create?name=w", {"Image": "busybox"}
    )
    assert response.status == 400


def test_malformed_requests_get_4xx_and_the_server_keeps_answering(
    server: RunningServer,
) -> None:
    bad_bodies: list[bytes] = [b"{", b"[]", b"null", b"\xff\xfe", b'{"Image": 3}',
                               b'{"Image": "busybox", "Cmd": [1]}',
                               b'{"Image": "busybox", "HostConfig": {"Memory": "1g"}}',
                               b'{"Image": "busybox", "HostConfig": []}']
    for body in bad_bodies:
        response, payload = request(server, "POST", "/v1.44/containers/create", body)
        assert response.status == 400, (body, payload)
        assert json.loads(payload)["message"]
    for path in ("/v1.44/containers/json?limit=-5", "/v1.44/containers/json?limit=x",
                 "/v1.44/containers/json?filters=%7B", "/v1.44/events?since=soon",
                 "/v1.44/containers/x/logs"):
        response, payload = request(server, "GET", path)
        assert response.status in (400, 404), (path, payload)
    huge = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n"
    assert raw_exchange(server, huge).startswith(b"HTTP/1.1 431")
    assert raw_exchange(server, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw_exchange(server, b"\x00\x01\x02garbage").startswith(b"HTTP/1.1 400")
    response, payload = request(server, "GET", "/_ping")
    assert (response.status, payload) == (200, b"OK")


def test_keep_alive_serves_several_requests_on_one_connection(server: RunningServer) -> None:
    conn = UnixHTTPConnection(server.socket_path)
    for _ in range(3):
        conn.request("GET", "/v1.44/containers/json")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == []
    conn.close()


def read_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    data = b""
    while True:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    frames = []
    while data:
        kind, size = struct.unpack(">BxxxI", data[:8])
        frames.append((kind, data[8 : 8 + size]))
        data = data[8 + size :]
    return frames


def hijack(
    server: RunningServer, path: str, body: bytes = b"", after: bytes = b""
) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(server.socket_path)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
        + after
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n"), head
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    return sock


def test_attach_half_close_closes_stdin_but_output_keeps_flowing(server: RunningServer) -> None:
    cid = create(server, ["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    sock = hijack(server, f"/v1.44/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1")
    response, _ = request(server, "POST", f"/v1.44/containers/{cid}/start")
    assert response.status == 204
    sock.sendall(b"x\n")
    sock.shutdown(socket.SHUT_WR)
    assert read_frames(sock) == [(1, b"x\n")]
    sock.close()
    response, body = request(server, "GET", f"/v1.44/containers/{cid}/json")
    assert json.loads(body)["State"]["Status"] == "exited"


def test_attach_detach_keys_end_the_session_and_the_container_keeps_running(
    server: RunningServer,
) -> None:
    cid = create(server, ["cat"], OpenStdin=True, Tty=False)
    request(server, "POST", f"/v1.44/containers/{cid}/start")
    sock = hijack(server, f"/v1.44/containers/{cid}/attach?stream=1&stdin=1&stdout=1")
    sock.sendall(b"one\n")
    assert sock.recv(64) == b"\x01\x00\x00\x00\x00\x00\x00\x04one\n"
    sock.sendall(b"\x10\x11")
    assert read_frames(sock) == []
    _response, body = request(server, "GET", f"/v1.44/containers/{cid}/json")
    assert json.loads(body)["State"]["Status"] == "running"


def test_exec_start_hijack_reads_stdin_sent_with_the_body(server: RunningServer) -> None:
    cid = create(server, ["sleep", "100"])
    request(server, "POST", f"/v1.44/containers/{cid}/start")
    response, body = request(
        server, "POST", f"/v1.44/containers/{cid}/exec",
        {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True},
    )
    assert response.status == 201
    exec_id = json.loads(body)["Id"]
    sock = hijack(
        server, f"/v1.44/exec/{exec_id}/start", b'{"Detach":false,"Tty":false}\n', b"abc"
    )
    sock.shutdown(socket.SHUT_WR)
    assert read_frames(sock) == [(1, b"abc")]
    response, body = request(server, "GET", f"/v1.44/exec/{exec_id}/json")
    assert json.loads(body)["ExitCode"] == 0


def test_wait_sends_headers_before_the_container_exits(server: RunningServer) -> None:
    cid = create(server, ["sleep", "100"])
    request(server, "POST", f"/v1.44/containers/{cid}/start")
    conn = UnixHTTPConnection(server.socket_path)
    conn.request("POST", f"/v1.44/containers/{cid}/wait?condition=not-running")
    response = conn.getresponse()  # returns on headers alone
    assert response.status == 200
    _, body = request(server, "GET", f"/v1.44/containers/{cid}/json")
    assert json.loads(body)["State"]["Running"] is True
    request(server, "POST", f"/v1.44/containers/{cid}/kill")
    assert json.loads(response.read()) == {"StatusCode": 137, "Error": None}
    conn.close()


def test_a_dropped_wait_does_not_disturb_the_server(server: RunningServer) -> None:
    cid = create(server, ["sleep", "100"])
    conn = UnixHTTPConnection(server.socket_path)
    conn.request("POST", f"/v1.44/containers/{cid}/wait?condition=next-exit")
    assert conn.getresponse().status == 200
    conn.close()
    response, _ = request(server, "POST", f"/v1.44/containers/{cid}/start")
    assert response.status == 204
    response, _ = request(server, "POST", f"/v1.44/containers/{cid}/stop")
    assert response.status == 204
    response, _ = request(server, "POST", f"/v1.44/containers/{cid}/stop")
    assert response.status == 304


def test_load_streams_a_large_chunked_body(server: RunningServer) -> None:
    size = 24 * 1024 * 1024

    def body() -> Iterator[bytes]:
        block = b"t" * (1024 * 1024)
        for _ in range(size // len(block)):
            yield block

    conn = UnixHTTPConnection(server.socket_path)
    conn.request(
        "POST", "/v1.44/images/load?quiet=1", body=body(),
        headers={"Content-Type": "application/x-tar", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 200
    lines = [json.loads(line) for line in response.read().splitlines()]
    assert lines == [{"stream": "Loaded image: loaded:latest\n"}]
    assert server.daemon.loaded_bytes == size
    conn.close()


def test_load_failure_after_200_is_reported_in_band(server: RunningServer) -> None:
    response, body = request(server, "POST", "/v1.44/images/load", b"",
                             {"Content-Type": "application/x-tar"})
    assert response.status == 200
    message = json.loads(body.splitlines()[-1])
    assert message["error"] == "empty archive"
    assert message["errorDetail"] == {"message": "empty archive"}


def test_image_names_with_slashes_and_ports(server: RunningServer) -> None:
    response, _ = request(
        server, "POST", "/v1.44/images/busybox/tag?repo=localhost:5000/team/bb&tag=v1"
    )
    assert response.status == 201
    response, body = request(server, "GET", "/v1.44/images/localhost:5000/team/bb:v1/json")
    assert response.status == 200
    assert "localhost:5000/team/bb:v1" in json.loads(body)["RepoTags"]
    response, body = request(server, "DELETE", "/v1.44/images/localhost:5000/team/bb:v1")
    assert json.loads(body)[0] == {"Untagged": "localhost:5000/team/bb:v1"}


def test_logs_are_stdcopy_framed_and_tail_applies(server: RunningServer) -> None:
    cid = create(server, ["sh", "-c", "echo a; echo b >&2; echo c"])
    conn = UnixHTTPConnection(server.socket_path)
    conn.request("POST", f"/v1.44/containers/{cid}/wait?condition=next-exit")
    waiting = conn.getresponse()
    request(server, "POST", f"/v1.44/containers/{cid}/start")
    assert json.loads(waiting.read())["StatusCode"] == 0
    response, body = request(server, "GET", f"/v1.44/containers/{cid}/logs?stdout=1&stderr=1")
    assert response.getheader("Content-Type") == "application/vnd.docker.multiplexed-stream"
    assert body == (
        b"\x01\x00\x00\x00\x00\x00\x00\x02a\n"
        b"\x02\x00\x00\x00\x00\x00\x00\x02b\n"
        b"\x01\x00\x00\x00\x00\x00\x00\x02c\n"
    )
    _, body = request(server, "GET", f"/v1.44/containers/{cid}/logs?stdout=1&tail=1")
    assert body == b"\x01\x00\x00\x00\x00\x00\x00\x02c\n"


def test_tcp_listener_serves_the_same_api(tmp_path: Path) -> None:
    with RunningServer(str(tmp_path / "api.sock"), tcp=("127.0.0.1", 0)) as running:
        host, port = running.server.tcp_addresses[0]
        conn = http.client.HTTPConnection(host, port, timeout=20)
        conn.request("GET", "/v1.44/version")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["ApiVersion"] == "1.44"
        conn.close()
        assert oct(os.stat(running.socket_path).st_mode & 0o777) == "0o660"
