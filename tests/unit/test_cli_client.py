"""The HTTP client against a scripted server on a socketpair-like unix socket."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.cli.streams import pump
from sampan.client.api import APIClient, encode_filters, encode_query
from sampan.client.errors import DaemonError, DaemonUnreachable
from sampan.client.hosts import DaemonAddress, parse_host
from sampan.client.stdcopy import FrameSplitter


class ScriptedServer:
    """Answers each connection with the next canned response; records the requests."""

    def __init__(self, path: Path, responses: list[bytes]) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen()
        self.responses = responses
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for response in self.responses:
            conn, _ = self.listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.requests.append(data)
                conn.sendall(response)


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "d.sock"


def _client(path: Path) -> APIClient:
    return APIClient(DaemonAddress("unix", str(path)))


def test_get_decodes_content_length_and_chunked_bodies(socket_path: Path) -> None:
    server = ScriptedServer(socket_path, [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
        b'{"a": 1}\n',
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n4\r\n[1, \r\n2\r\n2]\r\n0\r\n\r\n"])
    client = _client(socket_path)
    assert client.get("/x", {"all": True, "name": "a b"}) == {"a": 1}
    assert client.get("/y") == [1, 2]
    assert server.requests[0].startswith(b"GET /v1.44/x?all=1&name=a%20b HTTP/1.1\r\n")


def test_error_status_raises_with_the_daemons_message(socket_path: Path) -> None:
    ScriptedServer(socket_path, [b"HTTP/1.1 404 Not Found\r\nContent-Length: 36\r\n\r\n"
                                 b'{"message":"No such container: x"}\n\n'])
    with pytest.raises(DaemonError) as raised:
        _client(socket_path).get("/containers/x/json")
    assert (raised.value.status, raised.value.message) == (404, "No such container: x")


def test_missing_socket_is_daemon_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnreachable, match="no such socket"):
        _client(tmp_path / "none.sock").get("/_ping")


def test_hijack_returns_socket_and_bytes_read_past_the_head(socket_path: Path) -> None:
    ScriptedServer(socket_path, [b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n"
                                 b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"])
    sock, leftover = _client(socket_path).hijack("/containers/x/attach", {"stream": 1})
    read_end, write_end = os.pipe()
    try:
        assert pump(sock, leftover, tty=False, stdin_fd=None, stdout_fd=write_end,
                    stderr_fd=write_end) == "ended"
        assert os.read(read_end, 100) == b"hi\n"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_frame_splitter_handles_split_frames() -> None:
    splitter = FrameSplitter()
    frame = b"\x02\x00\x00\x00\x00\x00\x00\x02er"
    assert list(splitter.feed(frame[:5])) == []
    assert list(splitter.feed(frame[5:])) == [(2, b"er")]


def test_hosts_and_query_encoding() -> None:
    assert parse_host("unix:///run/x.sock") == DaemonAddress("unix", "/run/x.sock")
    assert parse_host("tcp://127.0.0.1").tcp_endpoint() == ("127.0.0.1", 2375)
    assert parse_host("") == DaemonAddress("unix", "/run/sampan.sock")
    with pytest.raises(ValueError):
        parse_host("ssh://host")
    assert encode_filters(["name=a", "name=b", "status=running"]) == \
        '{"name": {"a": true, "b": true}, "status": {"running": true}}'
    assert encode_query({"a": None, "b": False, "c": ["x", "y"]}) == "?b=0&c=x&c=y"
