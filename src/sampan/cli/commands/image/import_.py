"""``sampan import [-c] [-m] FILE|URL|- [REPOSITORY[:TAG]]``: an image from a rootfs tar."""

from __future__ import annotations

import argparse
import sys

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError

SUMMARY = "Import the contents from a tarball to create a filesystem image"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", SUMMARY)
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="Apply Dockerfile instruction to the created image")
    parser.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    parser.add_argument("--platform", default="", help="Set platform if server is multi-platform")
    parser.add_argument("source", metavar="file|URL|-")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    import json

    from sampan.cli.images import split_reference
    from sampan.cli.progress import display

    repo = tag = None
    if args.reference:
        repo, tag = split_reference(args.reference)
    params = {"fromSrc": "-" if args.source == "-" or "://" not in args.source else args.source,
              "repo": repo, "tag": tag, "message": args.message or None,
              "changes": args.change or None, "platform": args.platform or None}
    if args.source == "-":
        source = sys.stdin.buffer
        close = False
    else:
        try:
            source = open(args.source, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise StatusError(1, f"open {args.source}: {(error.strerror or '').lower()}") \
                from error
        close = True
    try:
        response = ctx.client.upload("POST", "/images/create", source, params)
    finally:
        if close:
            source.close()
    try:
        messages = [json.loads(line) for line in response.lines()]
    finally:
        response.close()
    import io

    display(messages, out=io.StringIO(), tty=False)
    for message in messages:
        status = str(message.get("status", ""))
        if status.startswith("sha256:"):
            ctx.out(status)
    return 0
