"""Login, and push/pull against registries that want credentials or TLS (issue 6, acceptance 3).

Three registries: htpasswd basic auth, bearer tokens from the token server in
``registry_helpers`` and TLS with a test CA (trusted through a Docker-style certs.d given to
sampand with ``--registry-certs-dir``). The docker CLI logs in (``POST /auth``) and sends the
stored credentials with every push and pull (``X-Registry-Auth``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import PASSWORD, USER, CertificateAuthority, Registries, RegistryProcess
from sampand_harness import BUSYBOX, Sampand


@pytest.fixture(scope="module")
def registries() -> Iterator[Registries]:
    found = Registries()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture(scope="module")
def basic(registries: Registries) -> RegistryProcess:
    return registries.start("basic", htpasswd=True)


@pytest.fixture(scope="module")
def bearer(registries: Registries) -> RegistryProcess:
    return registries.start("bearer", token=registries.token_server())


@pytest.fixture(scope="module")
def tls(registries: Registries, ca: CertificateAuthority) -> RegistryProcess:
    return registries.start("tls", tls=ca)


@pytest.fixture(scope="module")
def certs_dir(registries: Registries, tls: RegistryProcess, ca: CertificateAuthority) -> Path:
    directory = registries.base / "certs.d"
    (directory / tls.address).mkdir(parents=True)
    (directory / tls.address / "ca.crt").write_bytes(ca.cert_pem())
    return directory


@pytest.fixture(scope="module")
def daemon(certs_dir: Path) -> Iterator[Sampand]:
    with Sampand(extra_args=("--registry-certs-dir", str(certs_dir))) as started:
        started.ok("load", "-i", str(BUSYBOX))
        yield started


def login(daemon: Sampand, address: str, password: str = PASSWORD) -> tuple[int, str]:
    result = daemon.docker("login", "-u", USER, "--password-stdin", address,
                           input=password.encode())
    return result.returncode, (result.stdout + result.stderr).decode()


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_login_push_and_pull_need_good_credentials(
        kind: str, request: pytest.FixtureRequest, daemon: Sampand) -> None:
    registry: RegistryProcess = request.getfixturevalue(kind)
    remote = f"{registry.address}/private/busybox:1"
    daemon.ok("tag", "busybox", remote)
    daemon.docker("logout", registry.address)
    # Without login: refused, with the registry's reason.
    anonymous = daemon.docker("push", remote)
    assert anonymous.returncode != 0
    reason = anonymous.stderr.decode()
    assert ("no basic auth credentials" in reason) if kind == "basic" else (
        "unauthorized" in reason or "authentication required" in reason), reason
    # A bad password: POST /auth fails and nothing is stored.
    code, output = login(daemon, registry.address, "wrong-password")
    assert code != 0
    assert "401 Unauthorized" in output or "incorrect username or password" in output, output
    config = Path(daemon.env["DOCKER_CONFIG"]) / "config.json"
    assert not config.exists() or registry.address not in json.loads(
        config.read_text()).get("auths", {})
    # The API answer itself.
    status, body = daemon.request(
        "POST", "/auth", json.dumps({"username": USER, "password": PASSWORD,
                                     "serveraddress": registry.address}),
        headers={"Content-Type": "application/json"})
    assert status == 200
    assert json.loads(body)["Status"] == "Login Succeeded"
    # A good one: push and pull work.
    code, output = login(daemon, registry.address)
    assert code == 0 and "Login Succeeded" in output, output
    daemon.ok("push", remote)
    daemon.ok("rmi", remote)
    daemon.ok("pull", remote)
    assert daemon.inspect(remote)["Id"] == daemon.inspect("busybox")["Id"]
    # After logout the registry refuses a pull again.
    daemon.ok("logout", registry.address)
    daemon.ok("rmi", remote)
    refused = daemon.docker("pull", remote)
    assert refused.returncode != 0
    assert daemon.docker("image", "inspect", remote).returncode != 0


def test_tls_registry_trusted_through_certs_d(daemon: Sampand, tls: RegistryProcess) -> None:
    remote = f"{tls.address}/secure/busybox:1"
    daemon.ok("tag", "busybox", remote)
    daemon.ok("push", remote)
    daemon.ok("rmi", remote)
    daemon.ok("pull", remote)
    assert daemon.inspect(remote)["Id"] == daemon.inspect("busybox")["Id"]


def test_tls_registry_with_a_ca_that_did_not_sign_it_is_refused(
        registries: Registries, tls: RegistryProcess) -> None:
    other = registries.base / "other-certs.d"
    (other / tls.address).mkdir(parents=True)
    (other / tls.address / "ca.crt").write_bytes(CertificateAuthority("another CA").cert_pem())
    with Sampand(extra_args=("--registry-certs-dir", str(other))) as daemon:
        result = daemon.docker("pull", f"{tls.address}/secure/busybox:1")
        assert result.returncode != 0
        assert b"certificate verify failed" in result.stderr, result.stderr


def test_loopback_tls_registry_without_a_ca_is_insecure_like_dockerd(
        registries: Registries, tls: RegistryProcess, daemon: Sampand) -> None:
    # 127.0.0.0/8 is an insecure registry by default: TLS is used, its certificate unchecked.
    empty = registries.base / "empty-certs.d"
    empty.mkdir(exist_ok=True)
    daemon.ok("tag", "busybox", f"{tls.address}/secure/busybox:1")
    daemon.ok("push", f"{tls.address}/secure/busybox:1")
    with Sampand(extra_args=("--registry-certs-dir", str(empty))) as clean:
        clean.ok("pull", f"{tls.address}/secure/busybox:1")
