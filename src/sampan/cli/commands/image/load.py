"""``sampan load [-i FILE] [-q]``: images from a docker-archive or OCI layout tar."""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError

SUMMARY = "Load an image from a tar archive or STDIN"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-i", "--input", default="",
                        help="Read from tar archive file, instead of STDIN")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    import json

    from sampan.cli.progress import display
    from sampan.cli.terminal import is_terminal

    source: BinaryIO
    if args.input:
        try:
            source = open(args.input, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise StatusError(1, f"open {args.input}: {(error.strerror or '').lower()}") \
                from error
    else:
        if is_terminal(sys.stdin.fileno()):
            raise StatusError(1, "requested load from stdin, but stdin is empty")
        source = sys.stdin.buffer
    quiet = args.quiet or not ctx.stdout.isatty()
    try:
        response = ctx.client.upload("POST", "/images/load", source, {"quiet": quiet})
    finally:
        if args.input:
            source.close()
    try:
        lines = (json.loads(line) for line in response.lines())
        display(lines, out=ctx.stdout)
    finally:
        response.close()
    return 0
