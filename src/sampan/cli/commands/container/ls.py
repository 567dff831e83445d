"""``sampan ps`` / ``sampan container ls``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters

SUMMARY = "List containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all containers (default shows just running)")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("-n", "--last", type=int, default=-1,
                        help="Show n last created containers (includes all states)")
    parser.add_argument("-l", "--latest", action="store_true",
                        help="Show the latest created container (includes all states)")
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    parser.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    limit = 1 if args.latest else args.last
    params = {
        "all": True if (args.all or limit > 0) else None,
        "limit": limit if limit > 0 else None,
        "size": True if args.size and not args.quiet else None,
        "filters": encode_filters(args.filter),
    }
    containers = ctx.client.get("/containers/json", params) or []
    if args.quiet and not args.format:
        ids = [c["Id"] if args.no_trunc else c["Id"][:12] for c in containers]
        ctx.stdout.write("".join(i + "\n" for i in ids))
        return 0
    from sampan.cli.formatting import render_rows
    from sampan.cli.listing import CONTAINER_TABLE, CONTAINER_TITLES, ContainerRow

    fmt = args.format or CONTAINER_TABLE
    if args.quiet:
        fmt = "{{.ID}}"
    if args.size and fmt == CONTAINER_TABLE:
        fmt += "\\t{{.Size}}"
    rows = [ContainerRow(c, trunc=not args.no_trunc) for c in containers]
    ctx.stdout.write(render_rows(fmt, rows, CONTAINER_TITLES))
    return 0
