"""``sampan network connect [OPTIONS] NETWORK CONTAINER``"""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Connect a container to a network"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NETWORK CONTAINER", SUMMARY)
    parser.add_argument("--alias", action="append", default=[],
                        help="Add network-scoped alias for the container")
    parser.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    parser.add_argument("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"Container": args.container}
    endpoint: dict[str, Any] = {"Aliases": args.alias or None}
    if args.ip or args.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip, "IPv6Address": args.ip6}
    body["EndpointConfig"] = endpoint
    ctx.client.post(f"/networks/{quote(args.network)}/connect", body=body)
    return 0
