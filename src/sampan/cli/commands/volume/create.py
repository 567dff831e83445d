"""``sampan volume create [-d DRIVER] [-o OPT] [--label L] [VOLUME]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser, parse_key_values
from sampan.cli.context import Context
from sampan.cli.errors import UsageError

SUMMARY = "Create a volume"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] [VOLUME]", SUMMARY)
    parser.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    parser.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    parser.add_argument("--name", default="", help="Specify volume name")
    parser.add_argument("-o", "--opt", action="append", default=[],
                        help="Set driver specific options")
    parser.add_argument("volume", nargs="?", metavar="VOLUME")
    args = parser.parse_args(argv)
    if args.name and args.volume and args.name != args.volume:
        raise UsageError("conflicting options: cannot specify a volume-name through both "
                         "--name and as a positional arg")
    return args


def run(ctx: Context, args: argparse.Namespace) -> int:
    body = {"Name": args.volume or args.name, "Driver": args.driver,
            "DriverOpts": parse_key_values(args.opt), "Labels": parse_key_values(args.label)}
    result = ctx.client.post("/volumes/create", body=body) or {}
    ctx.out(str(result.get("Name", "")))
    return 0
