"""``sampan container prune [-f] [--filter]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.pruning import confirm, prune, report_space

SUMMARY = "Remove all stopped containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not prompt for confirmation")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if not confirm(ctx, "This will remove all stopped containers.", args.force):
        return 0
    report_space(ctx, prune(ctx, "containers", args.filter))
    return 0
