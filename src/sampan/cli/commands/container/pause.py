"""``sampan pause CONTAINER...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.client.api import quote

SUMMARY = "Pause all processes within one or more containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER [CONTAINER...]", SUMMARY)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    return for_each(ctx, args.containers,
                    lambda name: ctx.client.post(f"/containers/{quote(name)}/pause"))
