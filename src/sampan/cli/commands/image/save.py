"""``sampan save [-o FILE] IMAGE...``: a docker-archive tar of the images."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.output_files import write_body

SUMMARY = "Save one or more images to a tar archive (streamed to STDOUT by default)"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] IMAGE [IMAGE...]", SUMMARY)
    parser.add_argument("-o", "--output", default="", help="Write to a file, instead of STDOUT")
    parser.add_argument("--platform", default="", help="Save only the given platform variant")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    params = {"names": args.images, "platform": args.platform or None}
    response = ctx.client.request("GET", "/images/get", params)
    write_body(response, args.output, "images")
    return 0
