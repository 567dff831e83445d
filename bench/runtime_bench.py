#!/usr/bin/env python3
"""Compare sampan-runc with runc and crun on one busybox bundle; prints a table (not a test).

For each runtime, a worker process times N calls of each operation (wall clock of the
runtime process, from spawn to reaped exit):

* ``run``       ``<rt> --root R run -b B <id>`` with args ``["/bin/true"]``
* ``exec``      ``<rt> --root R exec <sleeper> /bin/true`` into a running container
* ``create``    ``<rt> --root R create -b B <id>``, then
* ``delete -f`` ``<rt> --root R delete -f <id>`` of that created container
* ``--version`` ``<rt> --version``: the start-up cost of the runtime process itself

The bundle comes from ``runc spec`` with ``terminal: false``, args ``["/bin/true"]`` and a
``cgroupsPath`` under a parent named after the temp dir, so nothing mixes with other users of
the machine. crun refuses hybrid cgroups ("cgroups in hybrid mode not supported, drop all
controllers from cgroupv2") unless the cgroup2 controller list is hidden: its whole worker runs
in ONE private mount namespace (``unshare -m``) where an empty file is bind-mounted over
``/sys/fs/cgroup/unified/cgroup.controllers``. That costs once per loop, not per call; the
table prints that one-off cost too. Finally it prints the top of ``python3 -X importtime -I -S``
for sampan-runc's launcher, sorted by cumulative time.

Usage: ``python3 bench/runtime_bench.py [--runs 30] [--sampan PATH] [--runtimes a,b,c]``
(as root). Everything is created under ``/tmp/sb.XXXXXX`` and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPAN_LAUNCHER = REPO / "bin" / "sampan-runc"
# the shared fixtures sit beside the checkout (override: SAMPAN_IMAGES)
_SHARED_IMAGES = os.environ.get(
    "SAMPAN_IMAGES", str(Path(__file__).resolve().parents[1].parent / "shared" / "images"))
BUSYBOX_ROOTFS = Path(_SHARED_IMAGES) / "busybox-rootfs.tar"
HYBRID_CONTROLLERS = Path("/sys/fs/cgroup/unified/cgroup.controllers")
CGROUP_ROOT = Path("/sys/fs/cgroup")
OPERATIONS = ("run", "exec", "create", "delete -f", "--version")
WARMUP = 2
# Runtimes are called with the environment containerd and conmon give them, not ours: with a
# pyenv shim first on PATH, `#!/usr/bin/env python3` would cost a bash script (~70 ms) per call.
SERVICE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


@dataclass
class Runtime:
    name: str
    path: str
    needs_private_controllers: bool = False


@dataclass
class Samples:
    """Timings in seconds per operation, or the error that stopped an operation."""

    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    setup_seconds: float | None = None


# The worker: runs inside the (possibly private) mount namespace, prints JSON --------------


def _call(argv: Sequence[str], errlog: Path) -> tuple[float, int]:
    """Time one runtime call; its stderr (and its container's) goes to ``errlog``.

    A file rather than a pipe: ``create`` leaves the container's init holding its stdio,
    so a pipe would never reach EOF.
    """
    with open(errlog, "wb") as err:
        started = time.perf_counter()
        code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        return time.perf_counter() - started, code


def _error(argv: Sequence[str], code: int, errlog: Path) -> str:
    text = errlog.read_text(errors="replace").strip().splitlines()
    return f"`{' '.join(argv)}` exited {code}: {' / '.join(text[-3:])}"


def _timed_loop(
    out: Samples, operation: str, argv_for: list[list[str]], errlog: Path, runs: int
) -> bool:
    times: list[float] = []
    for index, argv in enumerate(argv_for):
        elapsed, code = _call(argv, errlog)
        if code != 0:
            out.errors[operation] = _error(argv, code, errlog)
            return False
        if index >= len(argv_for) - runs:
            times.append(elapsed)
    out.times[operation] = times
    return True


def worker(job: dict[str, object]) -> Samples:
    runtime = str(job["runtime"])
    root = str(job["root"])
    bundle = str(job["bundle"])
    sleeper_bundle = str(job["sleeper_bundle"])
    runs = int(str(job["runs"]))
    prefix = str(job["prefix"])
    errlog = Path(str(job["errlog"]))
    base = [runtime, "--root", root]
    total = runs + WARMUP
    out = Samples()

    _timed_loop(out, "--version", [[runtime, "--version"]] * total, errlog, runs)

    _timed_loop(
        out,
        "run",
        [[*base, "run", "-b", bundle, f"{prefix}-run-{i}"] for i in range(total)],
        errlog,
        runs,
    )

    sleeper = f"{prefix}-sleeper"
    elapsed, code = _call([*base, "run", "-d", "-b", sleeper_bundle, sleeper], errlog)
    if code != 0:
        out.errors["exec"] = _error([*base, "run", "-d", sleeper], code, errlog)
    else:
        try:
            _timed_loop(out, "exec", [[*base, "exec", sleeper, "/bin/true"]] * total, errlog, runs)
        finally:
            _call([*base, "kill", sleeper, "KILL"], errlog)
            _wait_stopped(base, sleeper, errlog)
            _call([*base, "delete", "-f", sleeper], errlog)

    creates: list[float] = []
    deletes: list[float] = []
    for i in range(total):
        container = f"{prefix}-created-{i}"
        create = [*base, "create", "-b", bundle, container]
        elapsed, code = _call(create, errlog)
        if code != 0:
            out.errors["create"] = _error(create, code, errlog)
            _call([*base, "delete", "-f", container], errlog)
            break
        delete = [*base, "delete", "-f", container]
        elapsed_delete, code = _call(delete, errlog)
        if code != 0:
            out.errors["delete -f"] = _error(delete, code, errlog)
            break
        if i >= WARMUP:
            creates.append(elapsed)
            deletes.append(elapsed_delete)
    else:
        out.times["create"] = creates
        out.times["delete -f"] = deletes
    return out


def _wait_stopped(base: list[str], container: str, errlog: Path) -> None:
    for _ in range(100):
        result = subprocess.run(
            [*base, "state", container], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or '"stopped"' in result.stdout:
            return
        time.sleep(0.02)


def worker_main(job_json: str) -> int:
    samples = worker(json.loads(job_json))
    print(json.dumps({"times": samples.times, "errors": samples.errors}))
    return 0


# The driver: bundle, one worker per runtime, the table, clean-up ----------------------------


def prepare_bundles(base: Path, runc: str) -> tuple[Path, Path]:
    rootfs = base / "rootfs"
    rootfs.mkdir()
    with tarfile.open(BUSYBOX_ROOTFS) as tar:
        tar.extractall(rootfs, filter="fully_trusted")
    spec_dir = base / "spec"
    spec_dir.mkdir()
    subprocess.run([runc, "spec"], cwd=spec_dir, check=True)
    config = json.loads((spec_dir / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"]["path"] = str(rootfs)
    config["linux"]["cgroupsPath"] = f"/{base.name}/bench"
    bundle = base / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    config["process"]["args"] = ["/bin/sleep", "1000"]
    config["linux"]["cgroupsPath"] = f"/{base.name}/sleeper"
    sleeper = base / "sleeper"
    sleeper.mkdir()
    (sleeper / "config.json").write_text(json.dumps(config, indent=1))
    return bundle, sleeper


def worker_argv(runtime: Runtime, job: dict[str, object], empty: Path) -> list[str]:
    me = [sys.executable, "-I", "-S", str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    if not runtime.needs_private_controllers:
        return me
    # unshare(1) makes mount propagation private by default, so the bind mount never
    # reaches the host's mount namespace and disappears with the worker.
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh", str(empty), str(HYBRID_CONTROLLERS), *me]


def run_worker(runtime: Runtime, base: Path, bundle: Path, sleeper: Path, runs: int) -> Samples:
    job: dict[str, object] = {
        "runtime": runtime.path,
        "root": str(base / f"root-{runtime.name}"),
        "bundle": str(bundle),
        "sleeper_bundle": str(sleeper),
        "runs": runs,
        "prefix": f"{base.name.replace('.', '-')}-{runtime.name}",
        "errlog": str(base / f"stderr-{runtime.name}"),
    }
    empty = base / "empty"
    empty.touch()
    argv = worker_argv(runtime, job, empty)
    result = subprocess.run(argv, capture_output=True, text=True, env=SERVICE_ENV, check=False)
    samples = Samples()
    if result.returncode != 0 or not result.stdout.strip():
        samples.errors["worker"] = f"worker exited {result.returncode}: {result.stderr[-500:]}"
        return samples
    decoded = json.loads(result.stdout.strip().splitlines()[-1])
    samples.times = decoded["times"]
    samples.errors = decoded["errors"]
    if runtime.needs_private_controllers:
        samples.setup_seconds = namespace_setup_cost(empty, runs)
    return samples


def namespace_setup_cost(empty: Path, runs: int) -> float:
    """Median cost of entering a private mount namespace and hiding the controller list."""
    argv = ["unshare", "-m", "sh", "-c", f"mount --bind {empty} {HYBRID_CONTROLLERS}"]
    times = []
    for _ in range(max(5, runs // 3)):
        started = time.perf_counter()
        subprocess.run(argv, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def print_table(runtimes: list[Runtime], results: dict[str, Samples]) -> None:
    print(f"{'operation':<12}{'runtime':<14}{'median ms':>11}{'p90 ms':>10}{'vs runc':>10}{'n':>5}")
    for operation in OPERATIONS:
        runc_times = results.get("runc", Samples()).times.get(operation)
        runc_median = statistics.median(runc_times) if runc_times else None
        for runtime in runtimes:
            samples = results[runtime.name]
            label = operation if runtime is runtimes[0] else ""
            times = samples.times.get(operation)
            if not times:
                reason = "see below" if operation in samples.errors else "not run"
                print(f"{label:<12}{runtime.name:<14}  FAILED ({reason})")
                continue
            median = statistics.median(times)
            ratio = f"{median / runc_median:.2f}x" if runc_median else "-"
            print(
                f"{label:<12}{runtime.name:<14}{median * 1e3:>11.1f}"
                f"{percentile(times, 0.9) * 1e3:>10.1f}{ratio:>10}{len(times):>5}"
            )
    for runtime in runtimes:
        for operation, error in results[runtime.name].errors.items():
            print(f"\n{runtime.name} {operation} FAILED: {error[:1000]}")
    for runtime in runtimes:
        setup = results[runtime.name].setup_seconds
        if setup is not None:
            print(
                f"\n{runtime.name}: its whole loop ran in one private mount namespace; entering "
                f"it once (unshare -m + bind mount) costs {setup * 1e3:.1f} ms (median)"
            )


def launcher_python(launcher: Path) -> str:
    """The interpreter named by the launcher's ``#!`` line (``env`` resolved on SERVICE_ENV)."""
    fallback = shutil.which("python3", path=SERVICE_ENV["PATH"]) or sys.executable
    try:
        first = launcher.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return fallback
    words = first.removeprefix("#!").split()
    if not first.startswith("#!") or not words:
        return fallback
    if os.path.basename(words[0]) != "env":
        return words[0]
    names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    found = shutil.which(names[0], path=SERVICE_ENV["PATH"]) if names else None
    return found or fallback


def print_import_time(python: str, launcher: Path, args: list[str], top: int) -> None:
    """Top imports of one sampan-runc call by cumulative time (``-X importtime``)."""
    argv = [python, "-X", "importtime", "-I", "-S", str(launcher), *args]
    result = subprocess.run(argv, capture_output=True, text=True, env=SERVICE_ENV, check=False)
    rows: list[tuple[int, int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        # One space after the bar for a top-level import, two more per nesting level.
        rows.append((int(cumulative_us), int(self_us), name.rstrip().removeprefix(" ")))
    print(f"\n$ {' '.join(argv)}   (exit {result.returncode})")
    if not rows:
        print("no import timings: " + result.stderr.strip()[-300:])
        return
    total = sum(c for c, _s, name in rows if not name.startswith(" "))
    print(
        f"{len(rows)} modules, top-level imports total {total / 1e3:.1f} ms; "
        f"top {top} by cumulative time:"
    )
    print(f"{'cumulative ms':>14}{'self ms':>10}  module")
    for cumulative, self_time, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumulative / 1e3:>14.2f}{self_time / 1e3:>10.2f}  {name}")


def print_sampan_startup(launcher: Path, base: Path, bundle: Path, top: int) -> None:
    """Import cost of sampan-runc for ``--version`` and for the ``run`` path."""
    python = launcher_python(launcher)
    cost = bare_interpreter_cost(python, 10)
    print(f"\nbare `{python} -I -S -c pass`: {cost * 1e3:.1f} ms (median)")
    print_import_time(python, launcher, ["--version"], top)
    root = base / "root-importtime"
    container = f"{base.name.replace('.', '-')}-importtime"
    run = ["--root", str(root), "run", "-b", str(bundle), container]
    print_import_time(python, launcher, run, top)
    subprocess.run(
        [str(launcher), "--root", str(root), "delete", "-f", container],
        capture_output=True,
        env=SERVICE_ENV,
        check=False,
    )


def bare_interpreter_cost(python: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-I", "-S", "-c", "pass"], env=SERVICE_ENV, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cleanup(base: Path, runtimes: list[Runtime]) -> list[str]:
    """Delete every container left in our roots, unmount, remove cgroups and the temp dir."""
    problems: list[str] = []
    roots = [(runtime, base / f"root-{runtime.name}") for runtime in runtimes]
    roots += [(rt, base / "root-importtime") for rt in runtimes if rt.name == "sampan-runc"]
    for runtime, root in roots:
        if not root.is_dir():
            continue
        listed = subprocess.run(
            [runtime.path, "--root", str(root), "list", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        for container in listed.stdout.split():
            subprocess.run(
                [runtime.path, "--root", str(root), "delete", "-f", container],
                capture_output=True,
                check=False,
            )
            problems.append(f"{runtime.name}: deleted leftover container {container}")
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in reversed(points):
        if point.startswith(str(base) + "/"):
            subprocess.run(["umount", "-l", point], check=False)
            problems.append(f"unmounted leftover {point}")
    for top in [*CGROUP_ROOT.glob(f"*/{base.name}"), CGROUP_ROOT / base.name]:
        if not top.is_dir():
            continue
        for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        try:
            top.rmdir()
        except OSError as error:
            problems.append(f"could not remove {top}: {error}")
    shutil.rmtree(base, ignore_errors=True)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed calls per operation")
    parser.add_argument("--sampan", default=str(SAMPAN_LAUNCHER), help="sampan-runc path")
    parser.add_argument("--runtimes", default="sampan-runc,runc,crun", help="comma list")
    parser.add_argument("--imports", type=int, default=15, help="import rows to print")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if os.geteuid() != 0:
        parser.error("run as root: containers need namespaces and cgroups")

    runc = shutil.which("runc")
    known = {
        "sampan-runc": Runtime("sampan-runc", args.sampan),
        "runc": Runtime("runc", runc or "runc"),
        "crun": Runtime("crun", shutil.which("crun") or "crun", HYBRID_CONTROLLERS.exists()),
    }
    runtimes = []
    for name in args.runtimes.split(","):
        runtime = known[name.strip()]
        if not (os.path.isfile(runtime.path) and os.access(runtime.path, os.X_OK)):
            print(f"skipping {runtime.name}: {runtime.path} is not an executable")
            continue
        runtimes.append(runtime)
    if runc is None:
        parser.error("runc is needed to write the bundle's config.json (runc spec)")

    base = Path(tempfile.mkdtemp(prefix="sb.", dir="/tmp"))
    results: dict[str, Samples] = {}
    try:
        bundle, sleeper = prepare_bundles(base, runc)
        print(
            f"bundle {bundle} (busybox, /bin/true, runc spec defaults), {args.runs} timed calls "
            f"+ {WARMUP} warm-up per operation, times are wall clock per runtime process\n"
        )
        for runtime in runtimes:
            results[runtime.name] = run_worker(runtime, base, bundle, sleeper, args.runs)
        print_table(runtimes, results)
        if any(r.name == "sampan-runc" for r in runtimes):
            print_sampan_startup(Path(args.sampan), base, bundle, args.imports)
    finally:
        for problem in cleanup(base, runtimes):
            print(f"cleanup: {problem}")
    failed = any(samples.errors for samples in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
