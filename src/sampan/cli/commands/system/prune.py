"""``sampan system prune [-a] [--volumes] [-f] [--filter]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.pruning import confirm, prune, report_space
from sampan.client.errors import DaemonError

SUMMARY = "Remove unused data"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused images not just dangling ones")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not prompt for confirmation")
    parser.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    warning = ("This will remove:\n  - all stopped containers\n"
               "  - all networks not used by at least one container\n"
               + ("  - all anonymous volumes not used by at least one container\n"
                  if args.volumes else "")
               + ("  - all images without at least one container associated to them\n"
                  if args.all else "  - all dangling images\n")
               + "  - unused build cache\n")
    if not confirm(ctx, warning, args.force):
        return 0
    total = prune(ctx, "containers", args.filter)
    for kind, enabled in (("networks", True), ("volumes", args.volumes)):
        if not enabled:
            continue
        try:
            total += prune(ctx, kind, args.filter)
        except DaemonError as error:
            if error.status not in (404, 501):
                raise
            ctx.err(f"Error response from daemon: {error.message}")
    filters = list(args.filter) + ([] if args.all else ["dangling=true"])
    total += prune(ctx, "images", filters)
    report_space(ctx, total)
    return 0
