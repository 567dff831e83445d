"""``sampan network rm NETWORK...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.client.api import quote

SUMMARY = "Remove one or more networks"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "NETWORK [NETWORK...]", SUMMARY)
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not error if the network does not exist")
    parser.add_argument("networks", nargs="+", metavar="NETWORK")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.client.errors import DaemonError

    def remove(name: str) -> None:
        try:
            ctx.client.delete(f"/networks/{quote(name)}")
        except DaemonError as error:
            if not (args.force and error.status == 404):
                raise

    return for_each(ctx, args.networks, remove)
