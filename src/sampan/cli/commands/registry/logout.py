"""``sampan logout [SERVER]``: forget the stored credentials."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.commands.registry.login import DEFAULT_SERVER, read_config, write_config
from sampan.cli.context import Context

SUMMARY = "Log out from a registry"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[SERVER]", SUMMARY)
    parser.add_argument("server", nargs="?", default=DEFAULT_SERVER, metavar="SERVER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = read_config(ctx)
    auths = config.get("auths")
    if isinstance(auths, dict) and args.server in auths:
        ctx.out(f"Removing login credentials for {args.server}")
        del auths[args.server]
        write_config(ctx, config)
    else:
        ctx.out(f"Not logged in to {args.server}")
    return 0
