"""``sampan pull [-a] [-q] [--platform P] NAME[:TAG|@DIGEST]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context

SUMMARY = "Download an image from a registry"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NAME[:TAG|@DIGEST]", SUMMARY)
    parser.add_argument("-a", "--all-tags", action="store_true",
                        help="Download all tagged images in the repository")
    parser.add_argument("--platform", default="", help="Set platform if server is multi-platform")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    parser.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.images import pull, split_reference

    pull(ctx, args.reference, platform=args.platform, quiet=args.quiet,
         all_tags=args.all_tags)
    name, tag = split_reference(args.reference)
    separator = "@" if "@" in args.reference else ":"
    full = name if "/" in name.split(":")[0] and ("." in name.split("/")[0]
                                                   or ":" in name.split("/")[0]) \
        else f"docker.io/{'library/' if '/' not in name else ''}{name}"
    ctx.out(full if args.all_tags else f"{full}{separator}{tag}")
    return 0
