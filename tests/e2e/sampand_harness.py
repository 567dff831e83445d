"""A real ``sampand`` on a private socket, data root and exec root, for the e2e tests.

Everything lives under one short temp dir ``/tmp/sd.XXXXXX`` (unix socket paths must stay
under 108 bytes). The daemon can be killed (-9) and started again on the same roots (live
restore). Teardown, pass or fail (:meth:`Sampand.close`): remove every container, stop
sampand and the supervisor by the PIDs they recorded, kill any process left in the
containers' cgroups, unmount what is left under the dir, remove the containers' cgroups,
remove the dir.

Usage::

    with Sampand() as daemon:
        daemon.ok("load", "-i", str(BUSYBOX))
        assert daemon.ok("run", "--rm", "--network", "none", "busybox", "echo", "hi") == "hi\\n"
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
SHARED_IMAGES = Path(_SHARED_IMAGES)
BUSYBOX = SHARED_IMAGES / "busybox.tar"
CGROUP_ROOT = Path("/sys/fs/cgroup")


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket (raw requests for the bad-input tests)."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def pid_from(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return 0


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid: int, timeout: float = 10) -> None:
    """SIGTERM, wait, SIGKILL as a last resort (by PID, never by name)."""
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def mounts_under(root: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            target = line.split(" ")[4]
            if target.startswith(str(root) + "/"):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def container_cgroups(container_ids: set[str], parent: str = "sampan") -> list[Path]:
    found = []
    for controller in CGROUP_ROOT.iterdir():
        for container_id in container_ids:
            directory = controller / parent / container_id
            if directory.is_dir():
                found.append(directory)
    return found


def remove_cgroup_parent(parent: str) -> None:
    """The per-daemon ``--cgroup-parent`` directories, once their containers' are gone."""
    for controller in CGROUP_ROOT.iterdir():
        directory = controller / parent
        if directory.is_dir() and not directory.is_symlink():
            with contextlib.suppress(OSError):
                directory.rmdir()


def kill_cgroup_members(directories: list[Path]) -> None:
    """Last-resort cleanup: thaw and SIGKILL whatever is still in a container's cgroup."""
    for directory in directories:
        freezer = directory / "freezer.state"
        if freezer.exists():
            with contextlib.suppress(OSError):
                freezer.write_text("THAWED")
        with contextlib.suppress(OSError):
            for line in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(line), signal.SIGKILL)


class Sampand:
    """One sampand (and the supervisor it starts) under a private temp dir."""

    def __init__(self, *, extra_args: tuple[str, ...] = ()) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sd.", dir="/tmp"))
        self.socket_path = self.root / "s.sock"
        self.extra_args = extra_args
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                    "DOCKER_HOST": f"unix://{self.socket_path}",
                    "DOCKER_CONFIG": str(self.root / "cli")}
        self.daemon_env: dict[str, str] = {}  # extra environment for sampand's command
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: set[str] = set()
        # its own cgroup parent, removed in close(): nothing of this daemon stays in the tree
        self.cgroup_parent = f"sampan-test-{self.root.name.partition('.')[2]}"
        self._log = open(self.root / "sampand.log", "ab")  # noqa: SIM115 - closed in close()

    # ---- lifecycle
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "sampan.cmd.sampand", "-H", f"unix://{self.socket_path}",
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "sampand.pid"), "--log-level", "debug",
                "--cgroup-parent", self.cgroup_parent,
                # No default bridge unless a test asks for one (``extra_args``): a shared
                # host-wide sampan0 and nft table would tie concurrent daemons together.
                "--bridge", "none", *self.extra_args]

    def start(self, timeout: float = 30) -> None:
        self.process = subprocess.Popen(
            self.argv(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO / "src"), **self.daemon_env})
        deadline = time.monotonic() + timeout
        while not self.answers():
            assert self.process.poll() is None, f"sampand exited: {self.log_tail()}"
            assert time.monotonic() < deadline, f"sampand did not answer: {self.log_tail()}"
            time.sleep(0.1)

    def answers(self) -> bool:
        try:
            status, _ = self.request("GET", "/_ping", timeout=2)
        except OSError:
            return False
        return status == 200

    def kill9(self) -> None:
        """``kill -9`` of sampand alone (the supervisor and containers live on)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    @property
    def supervisor_pid(self) -> int:
        return pid_from(self.root / "exec" / "supervisor.pid")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.process is not None and self.process.poll() is None:
                ids = self.docker("ps", "-aq", "--no-trunc", timeout=20).stdout.decode().split()
                self.seen.update(ids)
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60)
        if self.process is not None:
            stop_pid(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        stop_pid(self.supervisor_pid)
        with contextlib.suppress(OSError):
            self.seen.update(os.listdir(self.root / "exec" / "bundles"))
        cgroups = container_cgroups(self.seen, self.cgroup_parent)
        kill_cgroup_members(cgroups)
        for target in mounts_under(self.root):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        time.sleep(0.1 if cgroups else 0)
        for directory in container_cgroups(self.seen, self.cgroup_parent):
            with contextlib.suppress(OSError):
                directory.rmdir()
        remove_cgroup_parent(self.cgroup_parent)
        self._log.close()
        subprocess.run(["rm", "-rf", str(self.root)], check=False)

    def __enter__(self) -> Sampand:
        if os.geteuid() != 0:
            raise AssertionError("the sampand e2e tests need root")
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- driving it
    def docker(self, *args: str, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", *args], env=self.env, input=input,
                              capture_output=True, timeout=timeout, check=False)

    def ok(self, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
        result = self.docker(*args, input=input, timeout=timeout)
        assert result.returncode == 0, (
            f"docker {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace')}\n{self.log_tail()}")
        return result.stdout.decode()

    def run_d(self, *args: str) -> str:
        """``docker run -d --network none <args>``: the new container's full ID."""
        cid = self.ok("run", "-d", "--network", "none", *args).strip()
        self.seen.add(cid)
        return cid

    def inspect(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("inspect", ref))[0]
        return result

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 30) -> tuple[int, bytes]:
        connection = UnixHTTPConnection(str(self.socket_path), timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_for(self, what: str, predicate: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.log_tail()}"
            time.sleep(0.1)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "sampand.log").read_text(errors="replace")[-4000:]
        return ""


def started_with_busybox(**kwargs: Any) -> Sampand:
    """A started sampand with the shared busybox image loaded (close it when done)."""
    daemon = Sampand(**kwargs)
    daemon.__enter__()
    try:
        daemon.ok("load", "-i", str(BUSYBOX))
    except BaseException:
        daemon.close()
        raise
    return daemon
