"""``sampan info [--format F]``: system-wide information from ``GET /info``."""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context

SUMMARY = "Display system-wide information"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-f", "--format", default="", help="Format output using a custom template")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    info: dict[str, Any] = ctx.client.get("/info")
    if args.format:
        from sampan.cli.formatting import render_each

        ctx.stdout.write(render_each(args.format, [info]))
        return 0
    from sampan.cli.units import bytes_size

    lines = ["Client:", " Context:    default", "", "Server:",
             f" Containers: {info.get('Containers', 0)}",
             f"  Running: {info.get('ContainersRunning', 0)}",
             f"  Paused: {info.get('ContainersPaused', 0)}",
             f"  Stopped: {info.get('ContainersStopped', 0)}",
             f" Images: {info.get('Images', 0)}",
             f" Server Version: {info.get('ServerVersion', '')}",
             f" Storage Driver: {info.get('Driver', '')}",
             f" Logging Driver: {info.get('LoggingDriver', '')}",
             f" Cgroup Driver: {info.get('CgroupDriver', '')}",
             f" Cgroup Version: {info.get('CgroupVersion', '')}",
             f" Runtimes: {' '.join(sorted(info.get('Runtimes') or {}))}",
             f" Default Runtime: {info.get('DefaultRuntime', '')}",
             f" Kernel Version: {info.get('KernelVersion', '')}",
             f" Operating System: {info.get('OperatingSystem', '')}",
             f" OSType: {info.get('OSType', '')}",
             f" Architecture: {info.get('Architecture', '')}",
             f" CPUs: {info.get('NCPU', 0)}",
             f" Total Memory: {bytes_size(float(info.get('MemTotal', 0)))}",
             f" Name: {info.get('Name', '')}",
             f" ID: {info.get('ID', '')}",
             f" Sampan Root Dir: {info.get('DockerRootDir', '')}",
             f" Debug Mode: {str(bool(info.get('Debug'))).lower()}",
             f" Live Restore Enabled: {str(bool(info.get('LiveRestoreEnabled'))).lower()}"]
    ctx.out("\n".join(lines))
    for warning in info.get("Warnings") or []:
        ctx.err(warning)
    return 0
