"""``sampan stats [-a] [--no-stream] [--no-trunc] [--format] [CONTAINER...]``

A live table: one reader thread per container follows ``GET /containers/{id}/stats``
and the main thread redraws every second (clearing the screen on a terminal). The CPU and
memory figures are computed as the docker CLI computes them.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters, quote
from sampan.client.errors import ClientError

SUMMARY = "Display a live stream of container(s) resource usage statistics"

TABLE = ("table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t"
         "{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}")
TITLES = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
          "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
          "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] [CONTAINER...]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all containers (default shows just running)")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("--no-stream", action="store_true",
                        help="Disable streaming stats and only pull the first result")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER")
    return parser.parse_args(argv)


class StatsRow:
    """One container's figures, as ``{{.Field}}`` sees them."""

    def __init__(self, container: str, sample: dict[str, Any] | None, trunc: bool) -> None:
        self.Container = container
        self.sample = sample or {}
        self.trunc = trunc

    @property
    def ID(self) -> str:
        identifier = str(self.sample.get("id") or self.Container)
        return identifier[:12] if self.trunc else identifier

    @property
    def Name(self) -> str:
        name = str(self.sample.get("name") or "--")
        return name.lstrip("/")

    def _cpu(self) -> float:
        cpu = self.sample.get("cpu_stats") or {}
        pre = self.sample.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
            (pre.get("cpu_usage") or {}).get("total_usage", 0)
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {})
                                               .get("percpu_usage") or []) or 1
        if system_delta > 0 and cpu_delta > 0:
            return float(cpu_delta / system_delta * online * 100.0)
        return 0.0

    def _memory(self) -> tuple[float, float]:
        memory = self.sample.get("memory_stats") or {}
        usage = float(memory.get("usage", 0))
        stats = memory.get("stats") or {}
        inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
        if inactive < usage:
            usage -= inactive
        return usage, float(memory.get("limit", 0))

    @property
    def CPUPerc(self) -> str:
        return "--" if not self.sample else f"{self._cpu():.2f}%"

    @property
    def MemUsage(self) -> str:
        from sampan.cli.units import bytes_size

        if not self.sample:
            return "-- / --"
        usage, limit = self._memory()
        return f"{bytes_size(usage)} / {bytes_size(limit)}"

    @property
    def MemPerc(self) -> str:
        if not self.sample:
            return "--"
        usage, limit = self._memory()
        return f"{usage / limit * 100.0 if limit else 0.0:.2f}%"

    @property
    def NetIO(self) -> str:
        from sampan.cli.units import human_size

        if not self.sample:
            return "-- / --"
        networks = self.sample.get("networks") or {}
        rx = sum(n.get("rx_bytes", 0) for n in networks.values())
        tx = sum(n.get("tx_bytes", 0) for n in networks.values())
        return f"{human_size(rx, 3)} / {human_size(tx, 3)}"

    @property
    def BlockIO(self) -> str:
        from sampan.cli.units import human_size

        if not self.sample:
            return "-- / --"
        entries = (self.sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
        read = sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == "read")
        write = sum(e.get("value", 0) for e in entries
                    if str(e.get("op", "")).lower() == "write")
        return f"{human_size(read, 3)} / {human_size(write, 3)}"

    @property
    def PIDs(self) -> str:
        if not self.sample:
            return "--"
        return str((self.sample.get("pids_stats") or {}).get("current", 0))

    def to_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ("BlockIO", "CPUPerc", "Container",
                                                        "ID", "MemPerc", "MemUsage", "Name",
                                                        "NetIO", "PIDs")}


def _follow(ctx: Context, container: str, samples: dict[str, Any], stop: threading.Event) -> None:
    try:
        for sample in ctx.client.json_stream("GET", f"/containers/{quote(container)}/stats",
                                             {"stream": True}):
            samples[container] = sample
            if stop.is_set():
                return
    except ClientError:
        samples[container] = None


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows

    names = list(args.containers)
    if not names:
        params = {"all": True if args.all else None, "filters": encode_filters([])}
        names = [c["Id"] for c in ctx.client.get("/containers/json", params) or []]
    fmt = args.format or TABLE
    if args.no_stream:
        rows = []
        failed = False
        for name in names:
            try:
                sample = ctx.client.get(f"/containers/{quote(name)}/stats",
                                        {"stream": False})
            except ClientError as error:
                ctx.err(f"Error response from daemon: {error}")
                failed = True
                continue
            rows.append(StatsRow(name, sample, not args.no_trunc))
        ctx.stdout.write(render_rows(fmt, rows, TITLES))
        return 1 if failed else 0
    samples: dict[str, Any] = {}
    stop = threading.Event()
    for name in names:
        threading.Thread(target=_follow, args=(ctx, name, samples, stop), daemon=True).start()
    tty = ctx.stdout.isatty()
    try:
        while True:
            time.sleep(1.0)
            rows = [StatsRow(name, samples.get(name), not args.no_trunc) for name in names]
            if tty:
                ctx.stdout.write("\x1b[2J\x1b[H")
            ctx.stdout.write(render_rows(fmt, rows, TITLES))
            ctx.stdout.flush()
    except KeyboardInterrupt:
        stop.set()
        return 0
