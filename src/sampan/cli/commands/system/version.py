"""``sampan version [--format F]``: client and server versions."""

from __future__ import annotations

import argparse
import sys

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import API_VERSION

TYPE_CHECKING = False  # typing costs start-up time, and version must be cheap
if TYPE_CHECKING:
    from typing import Any

SUMMARY = "Show the sampan version information"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-f", "--format", default="", help="Format output using a custom template")
    return parser.parse_args(argv)


def _client_info() -> dict[str, Any]:
    from sampan.cli.main import VERSION

    machine = _machine()
    return {"Platform": {"Name": "Sampan CLI"}, "Version": VERSION, "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION,
            "PythonVersion": ".".join(map(str, sys.version_info[:3])),
            "Os": sys.platform, "Arch": machine}


def _machine() -> str:
    import os

    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def run(ctx: Context, args: argparse.Namespace) -> int:
    client = _client_info()
    error = None
    server: dict[str, Any] | None = None
    try:
        server = ctx.client.get("/version")
    except Exception as failure:  # reported after the client half, as docker does
        error = failure
    if args.format:
        from sampan.cli.formatting import render_each

        ctx.stdout.write(render_each(args.format, [{"Client": client, "Server": server}]))
    else:
        lines = ["Client:",
                 f" Version:           {client['Version']}",
                 f" API version:       {client['ApiVersion']}",
                 f" Python version:    {client['PythonVersion']}",
                 f" OS/Arch:           {client['Os']}/{client['Arch']}"]
        if server is not None:
            lines += ["", f"Server: {(server.get('Platform') or {}).get('Name', '')}".rstrip()]
            for component in server.get("Components") or []:
                lines.append(f" {component.get('Name')}:")
                lines.append(f"  Version:          {component.get('Version')}")
                for key, value in (component.get("Details") or {}).items():
                    label = {"ApiVersion": "API version", "GoVersion": "Go version",
                             "GitCommit": "Git commit", "BuildTime": "Built",
                             "KernelVersion": "Kernel version", "Os": "OS",
                             "MinAPIVersion": "Minimum API version"}.get(key, key)
                    lines.append(f"  {label + ':':<18}{value}")
        ctx.out("\n".join(lines))
    if error is not None:
        raise error
    return 0
