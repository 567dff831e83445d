#!/usr/bin/env python3
"""Push and pull through a local registry: sampand vs Debian's dockerd, one run (not a test).

Each engine runs on private roots and socket (``tests/e2e/sampand_harness.py``;
``tests/e2e/dockerd_harness.py``'s ``EngineStack``) with the image loaded from the shared
fixtures. Per round and engine, a fresh ``docker-registry`` on 127.0.0.1 (empty storage, so
nothing is skipped or mounted) and, timed as the wall clock of one docker CLI call:

* ``push``          ``docker push <registry>/bench/<image>`` (every layer uploaded)
* ``pull absent``   after ``docker rmi`` of every tag of the image (its layers are gone):
                    ``docker pull`` of what the engine just pushed
* ``pull present``  the same pull again ("Image is up to date")

Images: ``nginx:bookworm`` (two layers, 33 MB compressed) and ``busybox:latest``.
Target (issue 6): ``pull absent`` no slower than dockerd. sampand overlaps download and
unpack; it compresses pushed layers with gzip level 1 (dockerd: Go's default level).

Usage: ``sudo python3 bench/distribution_bench.py [--runs 3] [--engines sampand,dockerd]
[--images nginx,busybox]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from dockerd_harness import EngineStack  # noqa: E402
from registry_helpers import Registries  # noqa: E402
from sampand_harness import BUSYBOX, SHARED_IMAGES, Sampand  # noqa: E402

IMAGES = {"nginx": ("nginx:bookworm", SHARED_IMAGES / "nginx.tar.gz"),
          "busybox": ("busybox:latest", BUSYBOX)}
ROWS = ("push", "pull absent", "pull present")


@dataclass
class Engine:
    name: str
    run: Callable[..., subprocess.CompletedProcess[bytes]]
    times: dict[str, list[float]] = field(default_factory=dict)


def docker(engine: Engine, *args: str) -> float:
    started = time.perf_counter()
    result = engine.run(*args)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
        raise RuntimeError(f"{engine.name}: docker {' '.join(args)}: {stderr.strip()}")
    return elapsed


def one_round(engine: Engine, registries: Registries, image: str, local: str,
              round_number: int) -> str:
    """Push ``local`` to a fresh registry, drop it, pull it back; returns the new local name."""
    registry = registries.start(f"{engine.name}-{image}-{round_number}")
    try:
        remote = f"{registry.address}/bench/{local.partition(':')[0].rpartition('/')[2]}:1"
        docker(engine, "tag", local, remote)
        engine.times.setdefault(f"{image} push", []).append(docker(engine, "push", remote))
        tags = engine.run("image", "inspect", "-f", "{{join .RepoTags \" \"}}", remote)
        names = tags.stdout.split() if isinstance(tags.stdout, str) else (
            tags.stdout.decode().split())
        docker(engine, "rmi", *names)
        engine.times.setdefault(f"{image} pull absent", []).append(
            docker(engine, "pull", remote))
        engine.times.setdefault(f"{image} pull present", []).append(
            docker(engine, "pull", remote))
        docker(engine, "tag", remote, local)
        docker(engine, "rmi", remote)
        return local
    finally:
        registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="sampand,dockerd")
    parser.add_argument("--images", default="nginx,busybox")
    args = parser.parse_args()
    images = [name for name in args.images.split(",") if name]
    engines: list[Engine] = []
    registries = Registries()
    try:
        for name in args.engines.split(","):
            if name == "sampand":
                daemon = Sampand()
                daemon.__enter__()
                try:
                    engine = Engine("sampand", lambda *a, d=daemon: d.docker(*a, timeout=600))
                    bench_engine(engine, registries, images, args.runs)
                finally:
                    daemon.close()
            elif name == "dockerd":
                with EngineStack(load_images=()) as stack:
                    engine = Engine("dockerd", lambda *a, s=stack: s.docker(*a, timeout=600))
                    bench_engine(engine, registries, images, args.runs)
            else:
                raise SystemExit(f"unknown engine {name!r}")
            engines.append(engine)
    finally:
        registries.close()
    report(engines, images)


def bench_engine(engine: Engine, registries: Registries, images: list[str], runs: int) -> None:
    for image in images:
        local, archive = IMAGES[image]
        docker(engine, "load", "-i", str(archive))
        for number in range(runs):
            one_round(engine, registries, image, local, number)
    print(f"{engine.name}: done", file=sys.stderr)


def report(engines: list[Engine], images: list[str]) -> None:
    names = [e.name for e in engines]
    print(f"{'ms (median)':<22}" + "".join(f"{n:>12}" for n in names)
          + ("   ratio" if len(engines) == 2 else ""))
    for image in images:
        for row in ROWS:
            key = f"{image} {row}"
            values = [statistics.median(e.times[key]) * 1000 if e.times.get(key) else 0.0
                      for e in engines]
            line = f"{key:<22}" + "".join(f"{v:>12.0f}" for v in values)
            if len(values) == 2 and values[1]:
                line += f"{values[0] / values[1]:>8.2f}"
            print(line)


if __name__ == "__main__":
    main()
