"""``sampan tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", SUMMARY)
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.images import split_reference

    repo, tag = split_reference(args.target)
    ctx.client.post(f"/images/{quote(args.source, safe='/:@')}/tag", {"repo": repo, "tag": tag})
    return 0
