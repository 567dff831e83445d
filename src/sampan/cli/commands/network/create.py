"""``sampan network create [OPTIONS] NETWORK``"""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser, parse_key_values
from sampan.cli.context import Context

SUMMARY = "Create a network"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NETWORK", SUMMARY)
    add = parser.add_argument
    add("--attachable", action="store_true", help="Enable manual container attachment")
    add("-d", "--driver", default="bridge", help="Driver to manage the Network")
    add("--gateway", action="append", default=[], help="IPv4 or IPv6 Gateway for the subnet")
    add("--internal", action="store_true", help="Restrict external access to the network")
    add("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    add("--ipam-driver", default="default", help="IP Address Management Driver")
    add("--ipv6", action="store_true", help="Enable or disable IPv6 networking")
    add("--label", action="append", default=[], help="Set metadata on a network")
    add("-o", "--opt", action="append", default=[], help="Set driver specific options")
    add("--subnet", action="append", default=[], help="Subnet in CIDR format")
    add("name", metavar="NETWORK")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    configs: list[dict[str, Any]] = []
    for index, subnet in enumerate(args.subnet):
        config: dict[str, Any] = {"Subnet": subnet}
        if index < len(args.gateway):
            config["Gateway"] = args.gateway[index]
        if index < len(args.ip_range):
            config["IPRange"] = args.ip_range[index]
        configs.append(config)
    body = {"Name": args.name, "Driver": args.driver, "Internal": args.internal,
            "Attachable": args.attachable, "EnableIPv6": args.ipv6,
            "IPAM": {"Driver": args.ipam_driver, "Config": configs, "Options": {}},
            "Options": parse_key_values(args.opt), "Labels": parse_key_values(args.label)}
    result = ctx.client.post("/networks/create", body=body) or {}
    if result.get("Warning"):
        ctx.err(f"WARNING: {result['Warning']}")
    ctx.out(str(result.get("Id", "")))
    return 0
