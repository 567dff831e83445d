"""``sampan export [-o FILE] CONTAINER``: the container's filesystem as a tar archive."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.output_files import write_body
from sampan.client.api import quote

SUMMARY = "Export a container's filesystem as a tar archive"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER", SUMMARY)
    parser.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.client.request("GET", f"/containers/{quote(args.container)}/export")
    write_body(response, args.output, "container filesystem")
    return 0
