"""``sampan diff CONTAINER``: A (added), C (changed), D (deleted) paths."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Inspect changes to files or directories on a container's filesystem"

_KINDS = {0: "C", 1: "A", 2: "D"}


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER", SUMMARY)
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    changes = ctx.client.get(f"/containers/{quote(args.container)}/changes") or []
    for change in changes:
        ctx.out(f"{_KINDS.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0
