"""``sampan port CONTAINER [PRIVATE_PORT[/PROTO]]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError
from sampan.client.api import quote

SUMMARY = "List port mappings or a specific mapping for the container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "CONTAINER [PRIVATE_PORT[/PROTO]]", SUMMARY)
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("port", metavar="PRIVATE_PORT[/PROTO]", nargs="?")
    return parser.parse_args(argv)


def _address(binding: dict[str, str]) -> str:
    host = binding.get("HostIp") or "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{binding.get('HostPort', '')}"


def run(ctx: Context, args: argparse.Namespace) -> int:
    info = ctx.client.get(f"/containers/{quote(args.container)}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if args.port:
        key = args.port if "/" in args.port else f"{args.port}/tcp"
        bindings = ports.get(key)
        if not bindings:
            raise StatusError(1, f"Error: No public port '{key}' published for "
                              f"{args.container}")
        for binding in bindings:
            ctx.out(_address(binding))
        return 0

    def order(key: str) -> tuple[int, str]:
        number, _, proto = key.partition("/")
        return (int(number) if number.isdigit() else 0, proto)

    for key in sorted(ports, key=order):
        for binding in ports[key] or []:
            ctx.out(f"{key} -> {_address(binding)}")
    return 0
