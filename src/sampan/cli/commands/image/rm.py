"""``sampan rmi [-f] [--no-prune] IMAGE...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote
from sampan.client.errors import DaemonError

SUMMARY = "Remove one or more images"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] IMAGE [IMAGE...]", SUMMARY)
    parser.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    parser.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    failed = False
    params = {"force": args.force or None, "noprune": args.no_prune or None}
    for image in args.images:
        try:
            deleted = ctx.client.delete(f"/images/{quote(image, safe='/:@')}", params) or []
        except DaemonError as error:
            ctx.err(f"Error response from daemon: {error.message}")
            failed = True
            continue
        for item in deleted:
            for verb, value in item.items():
                ctx.out(f"{verb}: {value}")
    return 1 if failed else 0
