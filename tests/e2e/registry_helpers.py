"""Registries for the distribution tests: Debian's ``docker-registry`` on 127.0.0.1 free
ports with their own storage, open, behind htpasswd basic auth, behind bearer tokens from a
small token server run here, or behind TLS with a test CA; and a TCP proxy that can cut a
pull in the middle.

Keys and certificates are made with ``cryptography``; htpasswd entries with ``bcrypt``.
Every process is stopped by its PID in ``close()``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.server
import ipaddress
import json
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from dockerd_harness import ManagedProcess, _free_port, _service_env, require_program

USER = "sampan"
PASSWORD = "s3cret-pw"


# ----------------------------------------------------------------------------- certificates


class CertificateAuthority:
    """A throwaway CA that signs server certificates for 127.0.0.1."""

    def __init__(self, name: str = "sampan test CA") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, directory: Path) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = directory / "server.crt", directory / "server.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
        return cert_path, key_path


# ----------------------------------------------------------------------------- token server


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker's token authentication: ``GET /token?service=&scope=`` with Basic credentials
    answers a JWT (RS256, signing certificate in ``x5c``) granting the scopes asked for to
    ``USER``/``PASSWORD``; anonymous callers get a token that grants nothing; wrong
    credentials get 401."""

    service = "sampan-test-registry"
    issuer = "sampan-test-issuer"

    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority("sampan token signer")
        self.bundle = directory / "token-ca.pem"
        self.bundle.write_bytes(self.ca.cert_pem())
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, body = server.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(path).query)
        granted: list[dict[str, Any]] = []
        subject = ""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            user, _, password = base64.b64decode(value).decode().partition(":")
            if scheme.lower() != "basic" or (user, password) != (USER, PASSWORD):
                return 401, {"details": "incorrect username or password"}
            subject = user
            for scope in query.get("scope", []):
                for item in scope.split(" "):
                    kind, _, rest = item.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if kind == "repository" and name:
                        granted.append({"type": kind, "name": name,
                                        "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": granted}
        der = self.ca.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        signature = self.ca.key.sign(signing_input.encode(), padding.PKCS1v15(),
                                     hashes.SHA256())
        token = signing_input + "." + _b64url(signature)
        return 200, {"token": token, "access_token": token, "expires_in": 300}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- registries


class RegistryProcess:
    """docker-registry with a given auth/TLS setup on a free port of 127.0.0.1."""

    def __init__(self, base: Path, name: str, *, htpasswd: bool = False,
                 token: TokenServer | None = None, tls: CertificateAuthority | None = None,
                 port: int = 0) -> None:
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.htpasswd = htpasswd
        self.token = token
        self.tls = tls
        self.process: ManagedProcess | None = None
        self.storage = self.dir / "data"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, "
            "delete: {enabled: true}}",
        ]
        http_line = f'http: {{addr: "{self.address}"'
        if self.tls is not None:
            cert, key = self.tls.issue_server(self.dir)
            http_line += f", tls: {{certificate: {cert}, key: {key}}}"
        lines.append(http_line + "}")
        if self.htpasswd:
            hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.dir / "htpasswd").write_text(f"{USER}:{hashed.replace('$2b$', '$2y$', 1)}\n")
            lines.append(f"auth: {{htpasswd: {{realm: sampan-test, path: {self.dir}/htpasswd}}}}")
        if self.token is not None:
            lines.append(
                f"auth: {{token: {{realm: \"{self.token.realm}\", service: "
                f"{self.token.service}, issuer: {self.token.issuer}, "
                f"rootcertbundle: {self.token.bundle}}}}}"
            )
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> None:
        config = self.dir / "config.yml"
        config.write_text(self.config())
        argv = [require_program("docker-registry"), "serve", str(config)]
        self.process = ManagedProcess("docker-registry", argv, self.dir / "log", _service_env())
        self.process.start()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.process.running():
                raise AssertionError(f"docker-registry exited:\n{self.process.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"docker-registry not ready:\n{self.process.log_tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    # Direct access for the tests (plain HTTP registries only).
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(f"http://{self.address}{path}", data=body,
                                         method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def blob_path(self, digest: str) -> Path:
        hex_part = digest.partition(":")[2]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hex_part[:2] / hex_part
                / "data")

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
        assert status == 202, status
        location = headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.address}{location}"
        separator = "&" if "?" in location else "?"
        # Go's ParseForm would read a form-typed body (urllib's default type) as parameters.
        request = urllib.request.Request(f"{location}{separator}digest={digest}", data=data,
                                         method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
        return digest


class Registries:
    """Every registry of one test module, under one temp dir; ``close()`` stops them all."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="rg.", dir="/tmp"))
        self.started: list[RegistryProcess] = []
        self.token_servers: list[TokenServer] = []
        self.proxies: list[CuttingProxy] = []

    def start(self, name: str, **kwargs: Any) -> RegistryProcess:
        registry = RegistryProcess(self.base, name, **kwargs)
        self.started.append(registry)
        registry.start()
        return registry

    def token_server(self) -> TokenServer:
        server = TokenServer(self.base)
        self.token_servers.append(server)
        return server

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        for registry in self.started:
            with contextlib.suppress(Exception):
                registry.stop()
        for server in self.token_servers:
            server.close()
        shutil.rmtree(self.base, ignore_errors=True)


# ----------------------------------------------------------------------------- cutting proxy


class CuttingProxy:
    """A TCP proxy in front of a registry that notes each request line and counts response
    bytes per connection; ``on_progress(proxy)`` runs after every forwarded response chunk
    and may call ``cut()``, which stops forwarding and closes every connection."""

    _REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")

    def __init__(self, upstream_port: int,
                 on_progress: Callable[[CuttingProxy], None] | None = None) -> None:
        self.upstream_port = upstream_port
        self.on_progress = on_progress
        self.requests: list[str] = []
        self.sent_after: dict[str, int] = {}  # path of a connection's last request -> bytes
        self.cut_done = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_done.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            state: dict[str, str] = {"path": ""}
            threading.Thread(target=self._upward, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._downward, args=(upstream, client, state),
                             daemon=True).start()

    def _upward(self, client: socket.socket, upstream: socket.socket,
                state: dict[str, str]) -> None:
        with contextlib.suppress(OSError):
            while not self.cut_done.is_set():
                data = client.recv(65536)
                if not data:
                    break
                for match in self._REQUEST_LINE.finditer(data):
                    line = f"{match.group(1).decode()} {match.group(2).decode()}"
                    with self._lock:
                        self.requests.append(line)
                        state["path"] = line
                        self.sent_after[line] = 0
                upstream.sendall(data)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _downward(self, upstream: socket.socket, client: socket.socket,
                  state: dict[str, str]) -> None:
        with contextlib.suppress(OSError):
            while not self.cut_done.is_set():
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
                with self._lock:
                    self.sent_after[state["path"]] = (
                        self.sent_after.get(state["path"], 0) + len(data))
                if self.on_progress is not None:
                    self.on_progress(self)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.cut_done.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def resume(self) -> None:
        """Forward new connections again (after a ``cut``)."""
        self.on_progress = None
        self.cut_done.clear()

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()


def ca_context(ca: CertificateAuthority) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca.cert_pem().decode())
    return context
