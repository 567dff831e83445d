"""``sampan rename CONTAINER NEW_NAME``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError
from sampan.client.api import quote

SUMMARY = "Rename a container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER NEW_NAME", SUMMARY)
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    new_name = args.new_name.strip()
    if not new_name:
        raise StatusError(1, "Error: neither old nor new names may be empty")
    ctx.client.post(f"/containers/{quote(args.container)}/rename", {"name": new_name})
    return 0
