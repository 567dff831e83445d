"""``docker cp`` against sampand (issue 8, acceptance 2 and 3): files, directories and
symlinks both ways, on running and stopped containers, into a volume mounted in the
container, and the escapes: symlinks in the container pointing out of it (absolute and
``../..`` forms) never make ``cp`` read or write anything of the host's."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sampand_harness import Sampand, UnixHTTPConnection, started_with_busybox


@pytest.fixture(scope="module")
def sampand() -> Iterator[Sampand]:
    daemon = started_with_busybox()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A host directory the containers must never reach (``/tmp/sampan-test-<random>``)."""
    directory = Path(f"/tmp/sampan-test-{secrets.token_hex(4)}")
    (directory / "secret").mkdir(parents=True)
    (directory / "secret" / "file").write_text("host secret\n")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def host_tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b""
            for p in sorted(directory.rglob("*"))}


def path_stat(sampand: Sampand, ref: str, path: str) -> tuple[int, dict[str, object]]:
    query = urllib.parse.urlencode({"path": path})
    connection = UnixHTTPConnection(str(sampand.socket_path))
    try:
        connection.request("HEAD", f"/v1.44/containers/{ref}/archive?{query}")
        response = connection.getresponse()
        response.read()
        connection_status = response.status
        header = response.getheader("X-Docker-Container-Path-Stat")
    finally:
        connection.close()
    stat = json.loads(base64.b64decode(header)) if header else {}
    return connection_status, stat


def put_tar(sampand: Sampand, ref: str, path: str, members: list[tuple[tarfile.TarInfo,
                                                                      bytes]]) -> int:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    query = urllib.parse.urlencode({"path": path})
    status, _ = sampand.request("PUT", f"/v1.44/containers/{ref}/archive?{query}",
                                body=buffer.getvalue(),
                                headers={"Content-Type": "application/x-tar"})
    return status


def tar_entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
              link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, data


def test_cp_files_dirs_and_symlinks_both_ways_running(sampand: Sampand, tmp_path: Path) -> None:
    cid = sampand.run_d("busybox", "sh", "-c",
                        "mkdir -p /d/sub && echo one > /d/one && echo two > /d/sub/two && "
                        "ln -s one /d/link && ln -s /d /dlink && exec sleep 300")
    sampand.wait_for("setup", lambda: sampand.docker("exec", cid, "test", "-L", "/dlink")
                     .returncode == 0)
    # out: a file, a directory (recursive), a symlink (copied as a link), /. contents
    sampand.ok("cp", f"{cid}:/d/one", str(tmp_path / "one"))
    assert (tmp_path / "one").read_text() == "one\n"
    sampand.ok("cp", f"{cid}:/d", str(tmp_path / "d"))
    assert (tmp_path / "d" / "sub" / "two").read_text() == "two\n"
    assert os.readlink(tmp_path / "d" / "link") == "one"
    sampand.ok("cp", f"{cid}:/dlink", str(tmp_path / "dlink"))
    assert os.readlink(tmp_path / "dlink") == "/d"
    (tmp_path / "contents").mkdir()
    sampand.ok("cp", f"{cid}:/d/.", str(tmp_path / "contents"))
    assert sorted(os.listdir(tmp_path / "contents")) == ["link", "one", "sub"]
    # -L follows the link
    sampand.ok("cp", "-L", f"{cid}:/d/link", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "one\n"
    status, stat = path_stat(sampand, cid, "/dlink")
    assert status == 200 and stat["linkTarget"] == "/d" and int(str(stat["mode"])) & (1 << 27)
    status, stat = path_stat(sampand, cid, "/d/")
    assert status == 200 and int(str(stat["mode"])) & (1 << 31) and stat["name"] == "d"

    # in: a file, a directory, a symlink; into a directory reached through a symlink
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "f").write_text("from host\n")
    os.symlink("inner/f", src / "hostlink")
    sampand.ok("cp", str(src), f"{cid}:/copied")
    assert sampand.ok("exec", cid, "cat", "/copied/inner/f") == "from host\n"
    assert sampand.ok("exec", cid, "readlink", "/copied/hostlink") == "inner/f\n"
    sampand.ok("cp", str(tmp_path / "one"), f"{cid}:/dlink/sub/")
    assert sampand.ok("exec", cid, "cat", "/d/sub/one") == "one\n"
    result = sampand.docker("cp", str(tmp_path / "one"), f"{cid}:/nonexistent/dir/")
    assert result.returncode != 0


def test_cp_to_and_from_a_stopped_container_and_its_volume(sampand: Sampand,
                                                          tmp_path: Path) -> None:
    volume = f"sampan-test-{secrets.token_hex(4)}"
    sampand.ok("volume", "create", volume)
    cid = sampand.ok("create", "--network", "none", "-v", f"{volume}:/vol", "busybox",
                     "sh", "-c", "cat /vol/in /made-before-start").strip()
    try:
        (tmp_path / "in").write_text("into the volume\n")
        (tmp_path / "made-before-start").write_text("into the root\n")
        sampand.ok("cp", str(tmp_path / "in"), f"{cid}:/vol/in")
        sampand.ok("cp", str(tmp_path / "made-before-start"), f"{cid}:/")
        sampand.ok("start", "-a", cid)
        assert sampand.ok("logs", cid) == "into the volume\ninto the root\n"
        # exited now: copy out of its root and of its volume
        sampand.ok("cp", f"{cid}:/vol/in", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "into the volume\n"
        sampand.ok("cp", f"{cid}:/made-before-start", str(tmp_path / "back2"))
        assert (tmp_path / "back2").read_text() == "into the root\n"
        sampand.ok("cp", f"{cid}:/etc/hostname", str(tmp_path / "hostname"))
        assert (tmp_path / "hostname").read_text() == cid[:12] + "\n"
        # the temporary mounts of the stopped container's root are gone again
        with open("/proc/self/mountinfo") as handle:
            assert cid not in handle.read()
        # and the data is really in the volume
        other = sampand.ok("run", "--rm", "--network", "none", "-v", f"{volume}:/x",
                           "busybox", "cat", "/x/in")
        assert other == "into the volume\n"
    finally:
        sampand.docker("rm", "-f", cid)
        sampand.docker("volume", "rm", volume)


def test_cp_into_read_only_volume_is_refused(sampand: Sampand, tmp_path: Path) -> None:
    volume = f"sampan-test-{secrets.token_hex(4)}"
    cid = sampand.run_d("-v", f"{volume}:/ro:ro", "busybox", "sleep", "300")
    try:
        (tmp_path / "f").write_text("x\n")
        result = sampand.docker("cp", str(tmp_path / "f"), f"{cid}:/ro/")
        assert result.returncode != 0
        assert b"read-only" in result.stderr
    finally:
        sampand.docker("rm", "-fv", cid)
        sampand.docker("volume", "rm", volume)


ESCAPES = ("/escape_abs", "/escape_rel", "/escape_up")


def make_escape_container(sampand: Sampand, secret: Path, running: bool) -> str:
    """A container whose root holds symlinks aimed at the host directory ``secret``."""
    script = (f"ln -s {secret}/secret /escape_abs && "
              f"ln -s ../../../../../../..{secret}/secret /escape_rel && "
              "mkdir -p /deep/er && ln -s ../../../../../../../.. /escape_up && "
              "ln -s / /deep/er/root")
    if running:
        cid = sampand.run_d("busybox", "sh", "-c", script + " && exec sleep 300")
        sampand.wait_for("links", lambda: sampand.docker(
            "exec", cid, "test", "-L", "/deep/er/root").returncode == 0)
        return cid
    cid = sampand.ok("run", "-d", "--network", "none", "busybox", "sh", "-c", script).strip()
    sampand.ok("wait", cid)
    return cid


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_never_escapes_the_container_root(sampand: Sampand, host_secret: Path,
                                             tmp_path: Path, running: bool) -> None:
    cid = make_escape_container(sampand, host_secret, running)
    before = host_tree(host_secret)
    try:
        # out of the container: the host's file is never read
        for link in ESCAPES:
            for path in (f"{link}/file", f"{link}/secret/file",
                         f"{link}{host_secret}/secret/file", f"{link}/."):
                out = tmp_path / secrets.token_hex(4)
                result = sampand.docker("cp", f"{cid}:{path}", str(out))
                if result.returncode == 0:
                    found = [p.read_bytes() for p in ([out] if out.is_file() else
                                                      out.rglob("*")) if p.is_file()]
                    assert b"host secret\n" not in found, path
        # "/" reached through links is the container's own root
        sampand.ok("cp", f"{cid}:/deep/er/root/etc/passwd", str(tmp_path / "passwd"))
        assert (tmp_path / "passwd").read_text().startswith("root:x:0:0")
        assert (tmp_path / "passwd").read_bytes() != Path("/etc/passwd").read_bytes()
        status, stat = path_stat(sampand, cid, "/escape_up")
        assert status == 200 and stat["linkTarget"] == "/"
        status, stat = path_stat(sampand, cid, "/escape_abs")
        assert stat["linkTarget"] == f"{host_secret}/secret"

        # into the container: nothing written on the host
        (tmp_path / "pwned").write_text("pwned\n")
        for link in ESCAPES:
            for path in (f"{link}/", f"{link}/secret/", link):
                sampand.docker("cp", str(tmp_path / "pwned"), f"{cid}:{path}")
        # hand-made tars: a symlink entry then a file through it; ``..`` names; hardlinks
        for target in (f"{host_secret}/secret", f"../../../../../..{host_secret}/secret"):
            put_tar(sampand, cid, "/tmp", [
                tar_entry("evil", kind=tarfile.SYMTYPE, link=target),
                tar_entry("evil/pwned", b"pwned\n")])
            put_tar(sampand, cid, "/tmp", [
                tar_entry("hard", kind=tarfile.LNKTYPE, link=f"{target}/file")])
        status = put_tar(sampand, cid, "/tmp",
                         [tar_entry(f"../../../../..{host_secret}/secret/pwned", b"pwned\n")])
        assert status == 400
        put_tar(sampand, cid, "/escape_up",
                [tar_entry(f"{str(host_secret)[1:]}/secret/pwned2", b"pwned\n")])
        assert host_tree(host_secret) == before
        # ... because the writes landed inside the container, where its links lead
        sampand.ok("cp", f"{cid}:{host_secret}/secret/pwned", str(tmp_path / "landed"))
        assert (tmp_path / "landed").read_text() == "pwned\n"
        sampand.ok("cp", f"{cid}:{host_secret}/secret/pwned2", str(tmp_path / "landed2"))
    finally:
        sampand.docker("rm", "-f", cid)
