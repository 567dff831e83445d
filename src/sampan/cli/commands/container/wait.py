"""``sampan wait CONTAINER...``: prints each container's exit code."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.client.api import quote

SUMMARY = "Block until one or more containers stop, then print their exit codes"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER [CONTAINER...]", SUMMARY)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    def wait(name: str) -> str:
        result = ctx.client.post(f"/containers/{quote(name)}/wait")
        error = (result or {}).get("Error") or {}
        if error.get("Message"):
            ctx.err(f"Error response from daemon: {error['Message']}")
        return str((result or {}).get("StatusCode", -1))

    return for_each(ctx, args.containers, wait)
