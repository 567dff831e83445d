#!/usr/bin/env python3
"""The ``sampan`` CLI against the docker CLI on the same sampand, in one run (not a test).

Rows, each timed as the wall clock of the client process from spawn to exit:

* ``version``      ``<cli> version`` (one ``GET /version``)
* ``ps -q``        ``<cli> ps -q`` (one ``GET /containers/json``)
* ``run --rm``     ``<cli> run --rm --network none busybox true`` (create, attach, wait,
  start, remove: most of the time is the daemon's)
* ``--version``    ``<cli> --version`` (no request: the client's own start-up)

Both CLIs get the same environment (a service-manager ``PATH`` so ``bin/sampan``'s
``#!/usr/bin/python3 -IS`` is what runs, not a pyenv shim). The table shows median and p90 and
the CLI overhead: the ``version``/``ps -q`` median minus what the same request costs from an
in-process client (the daemon's share), compared with docker's. Target (issue 7): sampan's
overhead <= 2x docker's. Finally the top of ``python3 -X importtime -I -S`` for ``ps -q``.

Usage: ``python3 bench/cli_bench.py [--runs 30]`` (as root: it starts a private sampand).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "src"))

from sampand_harness import started_with_busybox  # noqa: E402

SAMPAN = str(REPO / "bin" / "sampan")
ROWS = [("--version", ["--version"]), ("version", ["version"]), ("ps -q", ["ps", "-q"]),
        ("run --rm", ["run", "--rm", "--network", "none", "busybox", "true"])]


def time_calls(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    for _ in range(2):
        subprocess.run(argv, env=env, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def request_ms(socket_path: str, path: str, runs: int) -> float:
    """Median of one raw HTTP request over the socket: the daemon's share of a command."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(socket_path)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(65536):
                pass
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.9 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    daemon = started_with_busybox()
    try:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": str(daemon.root), "SAMPAN_HOST": f"unix://{daemon.socket_path}",
               "DOCKER_HOST": f"unix://{daemon.socket_path}",
               "DOCKER_CONFIG": str(daemon.root / "cli")}
        results: dict[tuple[str, str], list[float]] = {}
        for label, argv in ROWS:
            for cli, program in (("sampan", SAMPAN), ("docker", "docker")):
                results[(label, cli)] = time_calls([program, *argv], env, args.runs)
        daemon_share = {"version": request_ms(str(daemon.socket_path), "/v1.44/version",
                                              args.runs),
                        "ps -q": request_ms(str(daemon.socket_path), "/v1.44/containers/json",
                                            args.runs)}
        print(f"{'command':<12} {'sampan med':>11} {'p90':>7} {'docker med':>11} {'p90':>7} "
              f"{'ratio':>6}")
        for label, _ in ROWS:
            ours, theirs = results[(label, "sampan")], results[(label, "docker")]
            print(f"{label:<12} {statistics.median(ours):>9.1f}ms {p90(ours):>5.1f}ms "
                  f"{statistics.median(theirs):>9.1f}ms {p90(theirs):>5.1f}ms "
                  f"{statistics.median(ours) / statistics.median(theirs):>6.2f}")
        print()
        print("CLI overhead = median - one raw request's median (the daemon's share):")
        for label, share in daemon_share.items():
            ours = statistics.median(results[(label, "sampan")]) - share
            theirs = statistics.median(results[(label, "docker")]) - share
            verdict = "meets" if ours <= 2 * theirs else "MISSES"
            print(f"  {label:<8} request {share:5.1f}ms  sampan {ours:5.1f}ms  docker "
                  f"{theirs:5.1f}ms  ratio {ours / theirs:4.2f} ({verdict} the <= 2x target)")
        print()
        print("python3 -X importtime -I -S, sampan ps -q (top 12 by cumulative us):")
        trace = subprocess.run(["/usr/bin/python3", "-X", "importtime", "-I", "-S", SAMPAN,
                                "ps", "-q"], env=env, capture_output=True, text=True)
        rows = [line for line in trace.stderr.splitlines() if line.startswith("import time:")
                and "|" in line and "cumulative" not in line]
        rows.sort(key=lambda line: int(line.split("|")[1]), reverse=True)
        for line in rows[:12]:
            print("  " + line[len("import time:"):].strip())
    finally:
        daemon.close()


if __name__ == "__main__":
    os.umask(0o022)
    main()
