"""``sampan network ls [-f] [--format] [-q] [--no-trunc]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters

SUMMARY = "List networks"

TABLE = "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}"
TITLES = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
          "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows

    networks = ctx.client.get("/networks", {"filters": encode_filters(args.filter)}) or []
    rows = []
    for network in sorted(networks, key=lambda n: str(n.get("Name", ""))):
        identifier = str(network.get("Id", ""))
        rows.append({
            "ID": identifier if args.no_trunc else identifier[:12],
            "Name": network.get("Name", ""), "Driver": network.get("Driver", ""),
            "Scope": network.get("Scope", ""),
            "IPv6": "true" if network.get("EnableIPv6") else "false",
            "Internal": "true" if network.get("Internal") else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(
                (network.get("Labels") or {}).items())),
            "CreatedAt": network.get("Created", ""),
        })
    fmt = "{{.ID}}" if args.quiet else (args.format or TABLE)
    ctx.stdout.write(render_rows(fmt, rows, TITLES))
    return 0
