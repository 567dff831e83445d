"""``sampan image prune [-a] [-f] [--filter]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.pruning import confirm, prune, report_space

SUMMARY = "Remove unused images"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused images, not just dangling ones")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not prompt for confirmation")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    warning = ("This will remove all images without at least one container associated to "
               "them." if args.all else "This will remove all dangling images.")
    if not confirm(ctx, warning, args.force):
        return 0
    filters = list(args.filter) + ([] if args.all else ["dangling=true"])
    report_space(ctx, prune(ctx, "images", filters))
    return 0
