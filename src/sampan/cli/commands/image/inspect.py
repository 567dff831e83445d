"""``sampan image inspect [-f F] NAME...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.inspecting import inspect_all

SUMMARY = "Display detailed information on one or more images"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NAME [NAME...]", SUMMARY)
    parser.add_argument("-f", "--format", default="", help="Format output using a custom template")
    parser.add_argument("names", nargs="+", metavar="NAME")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    return inspect_all(ctx, args.names, args.format, ["image"],
                       size=bool(getattr(args, "size", False)))
