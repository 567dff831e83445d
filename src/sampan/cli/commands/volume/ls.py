"""``sampan volume ls [-f] [--format] [-q]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters

SUMMARY = "List volumes"

TABLE = "table {{.Driver}}\\t{{.Name}}"
TITLES = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
          "Scope": "SCOPE", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-f", "--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows

    result = ctx.client.get("/volumes", {"filters": encode_filters(args.filter)}) or {}
    for warning in result.get("Warnings") or []:
        ctx.err(warning)
    rows = []
    for volume in sorted(result.get("Volumes") or [], key=lambda v: str(v.get("Name", ""))):
        usage = volume.get("UsageData") or {}
        rows.append({
            "Driver": volume.get("Driver", ""), "Name": volume.get("Name", ""),
            "Mountpoint": volume.get("Mountpoint", ""), "Scope": volume.get("Scope", ""),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(
                (volume.get("Labels") or {}).items())),
            "Links": str(usage.get("RefCount", "N/A")), "Size": str(usage.get("Size", "N/A")),
        })
    fmt = "{{.Name}}" if args.quiet else (args.format or TABLE)
    ctx.stdout.write(render_rows(fmt, rows, TITLES))
    return 0
