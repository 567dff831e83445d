"""``sampan volume rm [-f] VOLUME...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.client.api import quote

SUMMARY = "Remove one or more volumes"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] VOLUME [VOLUME...]", SUMMARY)
    parser.add_argument("-f", "--force", action="store_true",
                        help="Force the removal of one or more volumes")
    parser.add_argument("volumes", nargs="+", metavar="VOLUME")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    params = {"force": args.force or None}
    return for_each(ctx, args.volumes,
                    lambda name: ctx.client.delete(f"/volumes/{quote(name)}", params))
