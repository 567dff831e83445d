"""``sampan top CONTAINER [ps OPTIONS]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser, split_at_command
from sampan.cli.context import Context
from sampan.cli.errors import UsageError
from sampan.client.api import quote

SUMMARY = "Display the running processes of a container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER [ps OPTIONS]", SUMMARY)
    parser.add_argument("container", metavar="CONTAINER", nargs="?")
    head, rest = split_at_command(parser, argv, 1)
    args = parser.parse_args(head)
    if not args.container:
        raise UsageError(f"\"{prog}\" requires at least 1 argument.\nSee '{prog} --help'.")
    args.ps_args = rest
    return args


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.tabwriter import align

    params = {"ps_args": " ".join(args.ps_args) or None}
    result = ctx.client.get(f"/containers/{quote(args.container)}/top", params)
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(process) for process in result.get("Processes") or []]
    ctx.out(align("\n".join(lines), minwidth=20))
    return 0
