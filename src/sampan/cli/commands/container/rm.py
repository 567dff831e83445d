"""``sampan rm [-f] [-v] [-l] CONTAINER...``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.client.api import quote

SUMMARY = "Remove one or more containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER [CONTAINER...]", SUMMARY)
    parser.add_argument("-f", "--force", action="store_true",
                        help="Force the removal of a running container (uses SIGKILL)")
    parser.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    parser.add_argument("-v", "--volumes", action="store_true",
                        help="Remove anonymous volumes associated with the container")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    params = {"force": args.force or None, "v": args.volumes or None,
              "link": args.link or None}

    def remove(name: str) -> None:
        ctx.client.delete(f"/containers/{quote(name.strip('/'))}", params)

    return for_each(ctx, args.containers, remove)
