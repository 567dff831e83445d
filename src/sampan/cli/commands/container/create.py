"""``sampan create [OPTIONS] IMAGE [COMMAND] [ARG...]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser, split_at_command
from sampan.cli.container_options import add_options
from sampan.cli.context import Context
from sampan.cli.creating import create_container
from sampan.cli.errors import UsageError

SUMMARY = "Create a new container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] IMAGE [COMMAND] [ARG...]", SUMMARY, add_help=False)
    add_options(parser)
    parser.add_argument("image", metavar="IMAGE", nargs="?")
    head, command = split_at_command(parser, argv, 1)
    args = parser.parse_args(head)
    if not args.image:
        raise UsageError(f"\"{prog}\" requires at least 1 argument.\nSee '{prog} --help'.")
    args.command = command
    return args


def run(ctx: Context, args: argparse.Namespace) -> int:
    ctx.out(create_container(ctx, args, args.image, args.command))
    return 0
