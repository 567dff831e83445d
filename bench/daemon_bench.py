#!/usr/bin/env python3
"""sampand vs Debian's dockerd, driven by the same docker CLI in one run (not a test).

Each engine runs on private roots and a private socket (sampand through
``tests/e2e/sampand_harness.py``; containerd + dockerd through
``tests/e2e/dockerd_harness.py``'s ``EngineStack``) with the shared busybox image loaded.
Timed, as the wall clock of one docker CLI call (median and nearest-rank p90 of ``--runs``
calls after one warm-up):

* ``run --rm``   ``docker run --rm --network none busybox true``
* ``create``     ``docker create --network none busybox true``
* ``start -a``   ``docker start -a <that container>``
* ``exec``       ``docker exec <sleeper> true``
* ``stop -t 0``  ``docker stop -t 0`` of a running ``sleep 1000`` (started untimed)
* ``rm``         ``docker rm`` of that stopped container
* ``run -d``     each of 50 sequential ``docker run -d --network none busybox sleep 1000``
* ``ps -a``      ``docker ps -a`` with those 50 containers
* ``rm -f 50``   one ``docker rm -f`` of the 50 (one sample per round)
* ``run -d -P8`` 50 ``run -d`` through ``xargs -P 8``: the wall time of the batch
* ``/_ping``     one ``GET /_ping`` on the socket (``http.client``; 200 samples)

Memory: PSS (``/proc/<pid>/smaps_rollup``) of what each engine adds, idle (busybox loaded, no
container) and per running container (with the 50 running, minus idle, over 50). sampan:
sampand + the supervisor + its runtime fork server (``sampan-runc --standby``); Docker:
dockerd + containerd + the shims. The containers' own processes are not counted for either.

Usage: ``sudo python3 bench/daemon_bench.py [--runs 10] [--engines sampand,dockerd]
[--profile] [--sampand-runtime runc]``. ``--profile`` also records sampand with py-spy
during ``run --rm`` calls (``pip install py-spy``) and prints its top functions;
``--sampand-runtime runc`` runs sampand over runc, to see the daemon's own cost.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from dockerd_harness import EngineStack  # noqa: E402
from sampand_harness import BUSYBOX, Sampand  # noqa: E402

BATCH = 50
PING_SAMPLES = 200
ROWS = ("run --rm", "create", "start -a", "exec", "stop -t 0", "rm", "run -d", "ps -a",
        "rm -f 50", "run -d -P8", "/_ping")


@dataclass
class Engine:
    name: str
    env: dict[str, str]
    socket_path: str
    pids: Callable[[], list[int]]  # the engine's own processes (for PSS)
    main_pid: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_matching(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (the shims name their containerd socket)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"containerd-shim" in cmdline and text.encode() in cmdline:
                found.append(int(entry))
    return found


def standby_runtimes(supervisor_pid: int) -> list[int]:
    """The supervisor's runtime fork server (``sampan-runc --standby``, its child): part of
    what sampan adds (a call's forked child is a runtime, not counted, as before)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            in_container = "/sampan/" in Path(f"/proc/{entry}/cgroup").read_text()
            if parent == supervisor_pid and b"--standby" in cmdline and not in_container:
                found.append(int(entry))  # (a container's init not yet exec'd is skipped)
    return found


def docker(engine: Engine, *args: str, stdin: bytes | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(["docker", *args], env=engine.env, input=stdin,
                            capture_output=True, timeout=300, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{engine.name}: docker {' '.join(args)}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return elapsed, result.stdout.decode()


def timed(engine: Engine, row: str, seconds: float) -> None:
    engine.times.setdefault(row, []).append(seconds)


def total_pss(engine: Engine) -> float:
    return sum(pss_kib(pid) for pid in engine.pids()) / 1024


def measure(engine: Engine, runs: int) -> None:
    none = ("--network", "none")
    # warm-up: one of each
    docker(engine, "run", "--rm", *none, "busybox", "true")
    sleeper = docker(engine, "run", "-d", *none, "busybox", "sleep", "1000")[1].strip()
    docker(engine, "exec", sleeper, "true")
    time.sleep(1)
    engine.memory["idle + 1 container"] = total_pss(engine)
    for _ in range(runs):
        timed(engine, "run --rm", docker(engine, "run", "--rm", *none, "busybox", "true")[0])
        seconds, out = docker(engine, "create", *none, "busybox", "true")
        timed(engine, "create", seconds)
        timed(engine, "start -a", docker(engine, "start", "-a", out.strip())[0])
        docker(engine, "rm", out.strip())
        timed(engine, "exec", docker(engine, "exec", sleeper, "true")[0])
        victim = docker(engine, "run", "-d", *none, "busybox", "sleep", "1000")[1].strip()
        timed(engine, "stop -t 0", docker(engine, "stop", "-t", "0", victim)[0])
        timed(engine, "rm", docker(engine, "rm", victim)[0])
    docker(engine, "rm", "-f", sleeper)
    time.sleep(1)
    idle = total_pss(engine)
    engine.memory["idle"] = idle
    ids = []
    for _ in range(BATCH):
        seconds, out = docker(engine, "run", "-d", *none, "busybox", "sleep", "1000")
        timed(engine, "run -d", seconds)
        ids.append(out.strip())
    time.sleep(1)
    busy = total_pss(engine)
    engine.memory[f"with {BATCH} running"] = busy
    engine.memory["per running container"] = (busy - idle) / BATCH
    for _ in range(runs):
        timed(engine, "ps -a", docker(engine, "ps", "-a")[0])
    timed(engine, "rm -f 50", docker(engine, "rm", "-f", *ids)[0])
    started = time.perf_counter()
    subprocess.run(["xargs", "-P", "8", "-n", "1", "sh", "-c",
                    "docker run -d --network none busybox sleep 1000 >/dev/null"],
                   input=("x\n" * BATCH).encode(), env=engine.env, check=True, timeout=600)
    timed(engine, "run -d -P8", time.perf_counter() - started)
    rest = docker(engine, "ps", "-aq")[1].split()
    if rest:
        docker(engine, "rm", "-f", *rest)
    for _ in range(PING_SAMPLES):
        connection = UnixHTTPConnection(engine.socket_path)
        started = time.perf_counter()
        connection.request("GET", "/_ping")
        response = connection.getresponse()
        response.read()
        timed(engine, "/_ping", time.perf_counter() - started)
        connection.close()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


def report(engines: list[Engine]) -> None:
    names = [e.name for e in engines]
    reference = engines[-1] if len(engines) > 1 else None
    header = f"{'ms':<12}" + "".join(f"{n + ' median':>16}{'p90':>9}" for n in names)
    if reference is not None:
        header += f"{'ratio':>8}"
    print(header)
    for row in ROWS:
        line = f"{row:<12}"
        medians = []
        for engine in engines:
            values = engine.times.get(row)
            if not values:
                line += f"{'-':>16}{'-':>9}"
                medians.append(0.0)
                continue
            median = statistics.median(values) * 1000
            medians.append(median)
            line += f"{median:>16.1f}{p90(values) * 1000:>9.1f}"
        if reference is not None and medians[-1]:
            line += f"{medians[0] / medians[-1]:>7.2f}x"
        print(line)
    print()
    print(f"{'PSS MiB':<24}" + "".join(f"{n:>14}" for n in names))
    for key in engines[0].memory:
        print(f"{key:<24}" + "".join(f"{e.memory.get(key, 0):>14.2f}" for e in engines))
    for engine in engines:
        for error in engine.errors:
            print(f"FAILED {engine.name}: {error}")


@contextlib.contextmanager
def sampand_engine(runtime: str = "") -> Iterator[Engine]:
    daemon = Sampand()
    extra = ["--default-runtime", runtime] if runtime else []
    daemon.argv = lambda: [str(REPO / "bin" / "sampand"), "-H",  # type: ignore[method-assign]
                           f"unix://{daemon.socket_path}", "--data-root",
                           str(daemon.root / "data"), "--exec-root", str(daemon.root / "exec"),
                           "--log-level", "info", *extra]
    with daemon:
        daemon.ok("load", "-i", str(BUSYBOX))
        assert daemon.process is not None
        main_pid = daemon.process.pid
        yield Engine("sampand", daemon.env, str(daemon.socket_path),
                     lambda: [main_pid, daemon.supervisor_pid,
                              *standby_runtimes(daemon.supervisor_pid)], main_pid)


@contextlib.contextmanager
def dockerd_engine() -> Iterator[Engine]:
    with EngineStack() as stack:
        dockerd = stack.dockerd.process
        containerd = stack.containerd.process
        assert dockerd is not None and containerd is not None
        base = str(stack.base)
        yield Engine("dockerd", stack.dockerd.env(), str(stack.dockerd.socket),
                     lambda: [dockerd.pid, containerd.pid, *children_matching(base)],
                     dockerd.pid)


def profile_run_path(engine: Engine, runs: int, out: Path) -> None:
    """py-spy record of sampand while it serves ``run --rm`` calls."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("--profile: py-spy is not installed (pip install py-spy)")
        return
    recorder = subprocess.Popen([py_spy, "record", "--pid", str(engine.main_pid), "--rate",
                                 "250", "--format", "raw", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    for _ in range(runs):
        docker(engine, "run", "--rm", "--network", "none", "busybox", "true")
    recorder.send_signal(2)
    recorder.wait(60)
    # Inclusive counts of sampan's own frames, and the leaves (self time), over the samples
    # where sampand was busy (py-spy records only non-idle threads by default, but a worker
    # thread parked in its queue still shows up: those stacks are left out).
    inclusive: dict[str, int] = {}
    leaves: dict[str, int] = {}
    busy = 0
    with contextlib.suppress(OSError), out.open() as handle:
        for line in handle:
            stack, _, count_text = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            count = int(count_text)
            if frames[-1].startswith(("_worker ", "EpollSelector.select", "Condition.wait")):
                continue
            busy += count
            leaves[frames[-1]] = leaves.get(frames[-1], 0) + count
            for frame in set(frames):
                if "sampan/" in frame:
                    inclusive[frame] = inclusive.get(frame, 0) + count
    print(f"\npy-spy (250 Hz): {busy} busy samples of sampand over {runs} x run --rm "
          f"(raw: {out})\ntop sampan frames, inclusive:")
    for frame, count in sorted(inclusive.items(), key=lambda item: -item[1])[:20]:
        print(f"{count:>6} {frame[:140]}")
    print("top leaves (self):")
    for frame, count in sorted(leaves.items(), key=lambda item: -item[1])[:15]:
        print(f"{count:>6} {frame[:140]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--engines", default="sampand,dockerd")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sampand-runtime", default="",
                        help="sampand's --default-runtime (e.g. runc: the daemon's own cost)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    factories: dict[str, Callable[[], contextlib.AbstractContextManager[Engine]]] = {
        "sampand": lambda: sampand_engine(args.sampand_runtime), "dockerd": dockerd_engine}
    engines = []
    failed = False
    for name in args.engines.split(","):
        with factories[name]() as engine:
            try:
                measure(engine, args.runs)
                if args.profile and name == "sampand":
                    profile_run_path(engine, args.runs, Path(f"/tmp/sampand-profile.{os.getpid()}"))
            except (RuntimeError, subprocess.SubprocessError) as error:
                engine.errors.append(str(error))
                failed = True
            engines.append(engine)
    report(engines)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
