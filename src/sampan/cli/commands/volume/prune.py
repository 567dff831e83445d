"""``sampan volume prune [-a] [-f] [--filter]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.pruning import confirm, prune, report_space

SUMMARY = "Remove unused local volumes"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused volumes, not just anonymous ones")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not prompt for confirmation")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if not confirm(ctx, "This will remove all local volumes not used by at least one "
                   "container.", args.force):
        return 0
    filters = list(args.filter) + (["all=true"] if args.all else [])
    report_space(ctx, prune(ctx, "volumes", filters))
    return 0
