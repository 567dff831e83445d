"""Private reference engines for end-to-end tests: containerd + dockerd, and docker-registry.

Everything one stack starts lives under one short temp dir ``/tmp/sx.XXXXXX`` (unix socket
paths must stay under 108 bytes): containerd's root/state/socket, dockerd's data-root,
exec-root, pidfile and socket, the docker CLI's config dir and the registry's storage. The
cgroup parent is ``/<basename of that dir>``, so every container cgroup the stack makes is
``/sys/fs/cgroup/<ctrl>/sx.XXXXXX/<id>`` and nothing is shared with other tests or engines.

Daemons are started the way a service manager starts them (default signal dispositions, no
inherited fds above 2, a new session, a small environment) and are stopped by the PID we
recorded: SIGTERM, wait, SIGKILL only as a last resort. Teardown runs pass or fail and also
removes what the daemons leave behind (see ``EngineStack.close``):

* containers still running (``docker rm -f``), then any shim or container process whose
  command line names our dir or whose cgroup is under our cgroup parent (killed by PID,
  after thawing a frozen cgroup, since SIGKILL is not delivered to a frozen task);
* mounts under the dir, deepest first: dockerd bind-mounts ``--data-root`` onto itself,
  overlay2 mounts ``merged`` dirs and network namespaces are nsfs bind mounts;
* the cgroup-parent directories, leaves first (dockerd never removes them);
* the dir itself.

Usage::

    with EngineStack(runtimes={"sampan": "/work/main/bin/sampan-runc"}) as stack:
        stack.docker_ok("run", "--rm", "--runtime", "sampan", "busybox", "echo", "hi")

The stack can also stop and restart dockerd alone on the same containerd (for live-restore
tests: ``stack.dockerd.stop()``, ``stack.dockerd.start()``) and start a registry
(``stack.start_registry()`` gives ``127.0.0.1:<port>``, an insecure registry by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[2].parent / "shared" / "images"))
SHARED_IMAGES = Path(_SHARED_IMAGES)
BUSYBOX_ARCHIVE = SHARED_IMAGES / "busybox.tar"
BUSYBOX_ROOTFS = SHARED_IMAGES / "busybox-rootfs.tar"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# The environment a service manager would give a daemon: nothing of ours (no DOCKER_HOST,
# no pytest variables), a PATH that has the sbin directories.
_SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HarnessError(RuntimeError):
    """A reference engine could not be started or driven; the message carries its log tail."""


def require_program(name: str) -> str:
    """The absolute path of ``name``, or a loud error: CI installs these, a skip would hide it."""
    found = shutil.which(name, path=_SERVICE_PATH + ":" + os.environ.get("PATH", ""))
    if found is None:
        raise HarnessError(
            f"{name} not found: install it (apt-get install docker.io runc crun "
            "docker-registry) before running the e2e tests"
        )
    return found


def docker_cli() -> str:
    """The docker CLI to drive daemons with (docker 28 in /usr/local/bin on the dev machines)."""
    explicit = os.environ.get("SAMPAN_DOCKER_CLI")
    return explicit if explicit else require_program("docker")


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One background daemon, its output in a log file, stopped by its PID only."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str]):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env)
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise HarnessError(f"{self.name} is not started")
        return self._popen.pid

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # restore_signals and close_fds are Popen's defaults; spelled out because the
            # callers' behaviour depends on them (a shell's `&` would ignore SIGINT/SIGQUIT,
            # and leaked fds reach containerd -> shim -> runtime). A new session keeps a
            # Ctrl-C in the terminal that runs pytest from reaching the daemons directly.
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                close_fds=True,
                restore_signals=True,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        return _log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit status."""
        if self._popen is None:
            return None
        popen = self._popen
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGKILL)
                popen.wait(10)
        return popen.returncode

    def kill(self) -> None:
        """SIGKILL by PID (a crash, for restart tests) and reap."""
        if self._popen is not None and self._popen.poll() is None:
            os.kill(self._popen.pid, signal.SIGKILL)
            self._popen.wait(10)


def _wait_for(predicate_name: str, check: object, timeout: float, proc: ManagedProcess) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not proc.running():
            raise HarnessError(
                f"{proc.name} exited with status {proc.returncode()} before {predicate_name}; "
                f"log {proc.log_path}:\n{proc.log_tail()}"
            )
        time.sleep(0.05)
    raise HarnessError(
        f"{proc.name} not ready after {timeout:.0f}s ({predicate_name}); "
        f"log {proc.log_path}:\n{proc.log_tail()}"
    )


def _service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": _SERVICE_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    if extra:
        env.update(extra)
    return env


class Containerd:
    """containerd on a private socket and root, outliving dockerd (so live restore works)."""

    def __init__(self, base: Path):
        self.dir = base / "ctd"
        self.socket = self.dir / "containerd.sock"
        self.process: ManagedProcess | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.dir}/root"\n'
            f'state = "{self.dir}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'grpc = {{ address = "{self.socket}" }}\n'
            f'ttrpc = {{ address = "{self.socket}.ttrpc" }}\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f'  path = "{self.dir}/opt"\n'
        )
        argv = [require_program("containerd"), "--config", str(config)]
        self.process = ManagedProcess("containerd", argv, self.dir / "log", _service_env())
        self.process.start()
        _wait_for("its socket exists", self.socket.exists, timeout, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class DockerdOptions:
    """What a test may vary about dockerd; the private paths are always the harness's own."""

    runtimes: Mapping[str, str] = field(default_factory=dict)
    default_runtime: str | None = None
    live_restore: bool = False
    insecure_registries: Sequence[str] = ()
    daemon_json: Mapping[str, object] = field(default_factory=dict)
    extra_args: Sequence[str] = ()
    start_timeout: float = 60.0


class Dockerd:
    """dockerd with its own socket, data-root, exec-root and pidfile, on our containerd."""

    def __init__(self, base: Path, containerd: Containerd, options: DockerdOptions):
        self.base = base
        self.containerd = containerd
        self.options = options
        self.socket = base / "docker.sock"
        self.data_root = base / "docker"
        self.exec_root = base / "dexec"
        self.pidfile = base / "dockerd.pid"
        self.log_path = base / "dockerd.log"
        self.cli_config = base / "cli"
        self.cgroup_parent = base.name
        self.process: ManagedProcess | None = None
        self._starts = 0

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        config_file = self.base / "daemon.json"
        # An explicit config file keeps /etc/docker/daemon.json out.
        config_file.write_text(json.dumps(dict(self.options.daemon_json)) + "\n")
        argv = [
            require_program("dockerd"),
            "--config-file", str(config_file),
            "--containerd", str(self.containerd.socket),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "-H", self.host,
            "--cgroup-parent", "/" + self.cgroup_parent,
            "--bridge", "none",
            "--iptables=false",
            "--ip-forward=false",
        ]  # fmt: skip
        for name, path in self.options.runtimes.items():
            argv += ["--add-runtime", f"{name}={path}"]
        if self.options.default_runtime:
            argv += ["--default-runtime", self.options.default_runtime]
        if self.options.live_restore:
            argv.append("--live-restore")
        for registry in self.options.insecure_registries:
            argv += ["--insecure-registry", registry]
        argv += list(self.options.extra_args)
        return argv

    def start(self) -> None:
        """Start and wait until the log says "API listen on" (the socket then accepts)."""
        self.cli_config.mkdir(parents=True, exist_ok=True)
        # A restart appends to the same log: remember where this start's output begins.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = ManagedProcess("dockerd", self.argv(), self.log_path, _service_env())
        self.process.start()
        self._starts += 1

        def listening() -> bool:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return b"API listen on" in log.read()

        _wait_for('"API listen on"', listening, self.options.start_timeout, self.process)

    def stop(self, timeout: float = 20.0) -> int | None:
        return None if self.process is None else self.process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL dockerd (containerd and the shims live on); restart with ``start()``."""
        if self.process is not None:
            self.process.kill()
        # A killed dockerd leaves its pidfile behind, and its data-root bind mount (with the
        # overlay mounts of live containers under it): the teardown unmounts those.
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def env(self) -> dict[str, str]:
        """Environment for the docker CLI (and docker-py's ``from_env``) on this daemon."""
        env = {
            "PATH": os.environ.get("PATH", _SERVICE_PATH),
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.cli_config),
        }
        return env


class Registry:
    """docker-registry on a free port of 127.0.0.1, storage in our dir, deletes enabled."""

    def __init__(self, base: Path):
        self.dir = base / "registry"
        self.port = 0
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage: {{filesystem: {{rootdirectory: {self.dir}/data}}, "
            "delete: {enabled: true}}\n"
            f'http: {{addr: "{self.address}"}}\n'
        )
        argv = [require_program("docker-registry"), "serve", str(config)]
        self.process = ManagedProcess("docker-registry", argv, self.dir / "log", _service_env())
        self.process.start()
        _wait_for("GET /v2/ answers", self._answers, timeout, self.process)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            raw = line.split()[4]
            points.append(raw.encode().decode("unicode_escape"))
    return points


def unmount_under(base: Path) -> list[str]:
    """Unmount everything at or below ``base``, deepest (latest) first; returns what was left."""
    prefix = str(base).rstrip("/") + "/"
    for _attempt in range(3):
        inside = [p for p in _mount_points() if p == str(base) or p.startswith(prefix)]
        if not inside:
            return []
        # mountinfo lists mounts in mount order: undo them in reverse, then deepest first.
        for point in sorted(reversed(inside), key=lambda p: p.count("/"), reverse=True):
            result = subprocess.run(["umount", point], capture_output=True, check=False)
            if result.returncode != 0:
                # Busy (a process still holds it): detach it so that removal can proceed.
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return [p for p in _mount_points() if p == str(base) or p.startswith(prefix)]


def cgroup_dirs(name: str) -> list[Path]:
    """Every cgroup directory called ``name`` right under a hierarchy root (v1, hybrid or v2)."""
    found = [d for d in CGROUP_ROOT.glob(f"*/{name}") if d.is_dir()]
    if (CGROUP_ROOT / name).is_dir():
        found.append(CGROUP_ROOT / name)
    return found


def _processes_of(base: Path, cgroup_parent: str) -> list[int]:
    """PIDs whose command line names ``base`` (shims) or that sit in our cgroup parent."""
    own = os.getpid()
    needle_path = str(base).encode()
    needle_cgroup = f"/{cgroup_parent}/".encode()
    needle_cgroup_leaf = f"/{cgroup_parent}\n".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/cgroup", "rb") as f:
                cgroups = f.read()
        except OSError:
            continue
        if needle_path in cmdline or needle_cgroup in cgroups or needle_cgroup_leaf in cgroups:
            pids.append(int(entry))
    return pids


def _thaw(name: str) -> None:
    freezer = CGROUP_ROOT / "freezer" / name
    for state in freezer.rglob("freezer.state") if freezer.is_dir() else []:
        with contextlib.suppress(OSError):
            state.write_text("THAWED")
    for directory in cgroup_dirs(name):
        for frozen in directory.rglob("cgroup.freeze"):
            with contextlib.suppress(OSError):
                frozen.write_text("0")


def kill_leftovers(base: Path, cgroup_parent: str) -> list[int]:
    """SIGKILL, by PID, processes the stack left behind; returns the PIDs signalled."""
    _thaw(cgroup_parent)
    pids = _processes_of(base, cgroup_parent)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        if not alive:
            break
        time.sleep(0.05)
    return pids


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def remove_cgroup_dirs(name: str) -> list[Path]:
    """rmdir the cgroup trees called ``name``, leaves first; returns the dirs that stayed."""
    left: list[Path] = []
    for top in cgroup_dirs(name):
        for _attempt in range(20):
            subdirs = sorted(
                (d for d in top.rglob("*") if d.is_dir()),
                key=lambda d: len(d.parts),
                reverse=True,
            )
            for directory in [*subdirs, top]:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            if not top.exists():
                break
            time.sleep(0.1)
        else:
            left.append(top)
    return left


class EngineStack:
    """containerd + dockerd (+ registry) under one temp dir; a context manager that cleans up."""

    def __init__(
        self,
        runtimes: Mapping[str, str] | None = None,
        *,
        options: DockerdOptions | None = None,
        load_images: Sequence[Path] = (BUSYBOX_ARCHIVE,),
        registry: bool = False,
    ):
        self.options = options if options is not None else DockerdOptions()
        if runtimes:
            self.options.runtimes = {**self.options.runtimes, **runtimes}
        self._load_images = list(load_images)
        self._want_registry = registry
        self.base = Path(tempfile.mkdtemp(prefix="sx.", dir="/tmp"))
        self.containerd = Containerd(self.base)
        self.registry: Registry | None = None
        self.dockerd = Dockerd(self.base, self.containerd, self.options)
        self.cleanup_report: list[str] = []

    @property
    def cgroup_parent(self) -> str:
        """The cgroup parent's name: containers live in ``<hierarchy>/<this>/<id>``."""
        return self.dockerd.cgroup_parent

    def __enter__(self) -> EngineStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._want_registry:
            self.start_registry()
        self.containerd.start()
        self.dockerd.start()
        for archive in self._load_images:
            self.docker_ok("load", "-i", str(archive), timeout=120)

    def start_registry(self) -> str:
        """Start the registry (once) and return its ``host:port``; 127.0.0.0/8 is insecure."""
        if self.registry is None:
            self.registry = Registry(self.base)
            self.registry.start()
        return self.registry.address

    # The docker CLI ---------------------------------------------------------------------

    def docker(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this dockerd; raises only if it hangs past ``timeout``."""
        try:
            return subprocess.run(
                [docker_cli(), *args],
                input=input,
                capture_output=True,
                text=True,
                env=self.dockerd.env(),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            raise AssertionError(
                f"docker {' '.join(args)} still running after {timeout:.0f}s (a runtime call "
                f"hangs?)\ndockerd log tail:\n{_log_tail(self.dockerd.log_path, 15)}"
            ) from expired

    def docker_ok(self, *args: str, timeout: float = 30.0) -> str:
        """Run the docker CLI, fail with its output unless it exits 0; returns stdout."""
        result = self.docker(*args, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n"
                f"dockerd log tail:\n{_log_tail(self.dockerd.log_path, 15)}"
            )
        return result.stdout

    def inspect(self, name: str) -> dict[str, object]:
        data = json.loads(self.docker_ok("inspect", name))
        assert isinstance(data, list) and len(data) == 1
        first = data[0]
        assert isinstance(first, dict)
        return first

    # Teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything by PID and remove every trace, pass or fail; never raises."""
        report = self.cleanup_report
        if self.dockerd.process is not None and self.dockerd.process.running():
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60)
        for stopper in (self.dockerd.stop, self.containerd.stop):
            try:
                stopper()
            except Exception as error:  # teardown must go on whatever happened
                report.append(f"stop failed: {error!r}")
        if self.registry is not None:
            self.registry.stop()
        leftovers = kill_leftovers(self.base, self.cgroup_parent)
        if leftovers:
            report.append(f"killed leftover processes {leftovers}")
        still_mounted = unmount_under(self.base)
        if still_mounted:
            report.append(f"could not unmount {still_mounted}")
        stayed = remove_cgroup_dirs(self.cgroup_parent)
        if stayed:
            report.append(f"could not remove cgroups {stayed}")
        if not still_mounted:
            shutil.rmtree(self.base, ignore_errors=True)
        else:
            report.append(f"kept {self.base} because mounts remain")


def cgroup_dirs_of(pid: int) -> dict[str, Path]:
    """Map controller name (``memory``, ``pids``, ...; ``""`` for the v2 tree) to its dir.

    ``/proc/<pid>/cgroup`` lines are ``hierarchy-id:controllers:path``; the v1 hierarchy of
    a controller is mounted at ``/sys/fs/cgroup/<controllers>`` on this host and the unified
    one at ``/sys/fs/cgroup/unified`` (hybrid) or ``/sys/fs/cgroup`` (pure v2).
    """
    mounts = _cgroup_mounts()
    found: dict[str, Path] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                mount = mounts.get("")
                if mount is not None:
                    found[""] = mount / path.lstrip("/")
                continue
            for controller in controllers.split(","):
                mount = mounts.get(controller)
                if mount is not None:
                    found[controller] = mount / path.lstrip("/")
    return found


def _cgroup_mounts() -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, after = line.split(" - ", 1)
            fstype, _source, options = after.split()[:3]
            point = Path(before.split()[4])
            if fstype == "cgroup2":
                mounts[""] = point
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in ("rw", "ro") or option.startswith("name="):
                        continue
                    mounts.setdefault(option, point)
    return mounts


@contextlib.contextmanager
def engine_stack(
    runtimes: Mapping[str, str] | None = None, **kwargs: object
) -> Iterator[EngineStack]:
    """Functional form of ``EngineStack`` for fixtures."""
    stack = EngineStack(runtimes, **kwargs)  # type: ignore[arg-type]
    with stack:
        yield stack
