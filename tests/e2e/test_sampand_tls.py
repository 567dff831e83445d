"""``sampand -H tcp://...``: mutual TLS (``--tlsverify --tlscacert --tlscert --tlskey``), the
docker CLI driving it over TCP, clients without a certificate (or with one from another CA)
refused in the handshake, tcp:// without TLS refused unless ``--insecure-tcp`` (which warns).

The CA, the server's and the clients' certificates are made here with ``cryptography``.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sampand_harness import BUSYBOX, REPO, Sampand

_LISTEN = re.compile(r"listening on .*tcp://127\.0\.0\.1:(\d+)")


@dataclass
class Pair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class CertificateAuthority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.path = directory / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(_name(name))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = Pair(self.directory / f"{name}-cert.pem", self.directory / f"{name}-key.pem")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair


@dataclass
class TLSDaemon:
    daemon: Sampand
    port: int
    ca: Path
    client: Pair
    stranger: Pair  # a client certificate from another CA

    def docker(self, *args: str, cert: Pair | None = None, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        cert = cert or self.client
        tls = ["--tlsverify", "--tlscacert", str(self.ca), "--tlscert", str(cert.cert),
               "--tlskey", str(cert.key)]
        env = {k: v for k, v in self.daemon.env.items() if k != "DOCKER_HOST"}
        return subprocess.run(["docker", *tls, "-H", f"tcp://127.0.0.1:{self.port}", *args],
                              env=env, input=input, capture_output=True, timeout=timeout,
                              check=False)


def _tcp_port(daemon: Sampand) -> int:
    deadline = time.monotonic() + 10
    while True:
        found = _LISTEN.search(daemon.log_tail())
        if found:
            return int(found.group(1))
        assert time.monotonic() < deadline, daemon.log_tail()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSDaemon]:
    directory = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(directory, "ca")
    server = ca.issue("server", server=True)
    client = ca.issue("client", server=False)
    stranger = CertificateAuthority(directory, "other-ca").issue("stranger", server=False)
    daemon = Sampand(extra_args=(
        "-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", str(ca.path),
        "--tlscert", str(server.cert), "--tlskey", str(server.key)))
    daemon.__enter__()
    try:
        daemon.ok("load", "-i", str(BUSYBOX))
        yield TLSDaemon(daemon, _tcp_port(daemon), ca.path, client, stranger)
    finally:
        daemon.close()


def test_docker_cli_over_mutual_tls(tls_daemon: TLSDaemon) -> None:
    version = tls_daemon.docker("version", "--format", "{{.Server.Os}}")
    assert version.returncode == 0, version.stderr
    assert version.stdout == b"linux\n"
    ran = tls_daemon.docker("run", "--rm", "--network", "none", "busybox", "echo", "hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"hi\n"
    # The CLI half-closes with a TLS close_notify when stdin ends; the output still comes.
    piped = tls_daemon.docker("run", "-i", "--rm", "--network", "none", "busybox", "cat",
                              input=b"x\n")
    assert (piped.returncode, piped.stdout) == (0, b"x\n"), piped.stderr
    listed = tls_daemon.docker("images", "--format", "{{.Repository}}")
    assert listed.returncode == 0 and b"busybox" in listed.stdout.split(), listed


def test_client_with_a_certificate_of_another_ca_is_refused(tls_daemon: TLSDaemon) -> None:
    result = tls_daemon.docker("version", "--format", "{{.Server.Os}}",
                               cert=tls_daemon.stranger, timeout=30)
    assert result.returncode != 0
    assert b"linux" not in result.stdout


def test_client_without_a_certificate_is_refused(tls_daemon: TLSDaemon) -> None:
    # The docker CLI always sends its certificate with --tlsverify; a bare TLS client shows
    # that the server itself demands one (the handshake fails, no HTTP answer).
    context = ssl.create_default_context(cafile=str(tls_daemon.ca))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connection = http.client.HTTPSConnection("127.0.0.1", tls_daemon.port, context=context,
                                                 timeout=10)
        try:
            connection.request("GET", "/_ping")
            connection.getresponse().read()
        finally:
            connection.close()
    # ...and plain HTTP on the TLS port gets no API answer either.
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as plain:
        plain.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := plain.recv(4096):  # until the server closes it
                answer += chunk
        assert not answer.startswith(b"HTTP/1.1 200"), answer


def _sampand_alone(*args: str, tmp: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sampan.cmd.sampand", "--data-root", str(tmp / "data"),
         "--exec-root", str(tmp / "exec"), "--pidfile", str(tmp / "sampand.pid"),
         "--bridge", "none", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO / "src")})


def test_tcp_without_tls_is_refused(tmp_path: Path) -> None:
    process = _sampand_alone("-H", "tcp://127.0.0.1:0", tmp=tmp_path)
    output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert b"--tlsverify" in output and b"--insecure-tcp" in output, output
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_tlsverify_without_the_files_is_refused(tmp_path: Path) -> None:
    process = _sampand_alone("-H", "tcp://127.0.0.1:0", "--tlsverify", tmp=tmp_path)
    output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert b"--tlscacert" in output and b"--tlskey" in output, output


def test_insecure_tcp_warns_and_answers() -> None:
    daemon = Sampand(extra_args=("-H", "tcp://127.0.0.1:0", "--insecure-tcp"))
    with daemon:
        port = _tcp_port(daemon)
        assert "WITHOUT TLS" in daemon.log_tail()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/_ping")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"OK")
        finally:
            connection.close()
