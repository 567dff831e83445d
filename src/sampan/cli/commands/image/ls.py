"""``sampan images`` / ``sampan image ls [REPOSITORY[:TAG]]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters

SUMMARY = "List images"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] [REPOSITORY[:TAG]]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all images (default hides intermediate images)")
    parser.add_argument("--digests", action="store_true", help="Show digests")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows
    from sampan.cli.listing import IMAGE_TABLE, IMAGE_TABLE_DIGESTS, IMAGE_TITLES, image_rows

    filters = list(args.filter)
    if args.reference:
        filters.append(f"reference={args.reference}")
    params = {"all": True if args.all else None, "filters": encode_filters(filters)}
    images = ctx.client.get("/images/json", params) or []
    rows = image_rows(images, trunc=not args.no_trunc)
    if args.quiet:
        fmt = "{{.ID}}"
    else:
        fmt = args.format or (IMAGE_TABLE_DIGESTS if args.digests else IMAGE_TABLE)
    ctx.stdout.write(render_rows(fmt, rows, IMAGE_TITLES))
    return 0
