"""``sampan network disconnect [OPTIONS] NETWORK CONTAINER``"""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Disconnect a container from a network"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NETWORK CONTAINER", SUMMARY)
    parser.add_argument("-f", "--force", action="store_true",
                        help="Force the container to disconnect from a network")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"Container": args.container}
    body["Force"] = args.force
    ctx.client.post(f"/networks/{quote(args.network)}/disconnect", body=body)
    return 0
