"""``sampan inspect [--type T] [-f F] [-s] NAME...``: any object kind."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.inspecting import FETCHERS, inspect_all

SUMMARY = "Return low-level information on sampan objects"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NAME|ID [NAME|ID...]", SUMMARY)
    parser.add_argument("-f", "--format", default="", help="Format output using a custom template")
    parser.add_argument("-s", "--size", action="store_true",
                        help="Display total file sizes if the type is container")
    parser.add_argument("--type", default="", choices=["", *FETCHERS],
                        help="Only inspect objects of the given type")
    parser.add_argument("names", nargs="+", metavar="NAME|ID")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    kinds = [args.type] if args.type else list(FETCHERS)
    return inspect_all(ctx, args.names, args.format, kinds, size=args.size)
