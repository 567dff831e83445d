"""``sampan events [--since] [--until] [-f] [--format]``: the daemon's event stream."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import encode_filters

SUMMARY = "Get real time events from the server"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided")
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("--since", default=None, help="Show all events created since timestamp")
    parser.add_argument("--until", default=None, help="Stream events until this timestamp")
    return parser.parse_args(argv)


def _line(event: dict[str, Any]) -> str:
    nanos = int(event.get("timeNano") or int(event.get("time", 0)) * 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(nanos // 10**9))
    zone = time.strftime("%z", time.localtime(nanos // 10**9))
    zone = zone[:3] + ":" + zone[3:]
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
    kind = event.get("Type", "")
    action = event.get("Action") or event.get("status", "")
    text = f"{stamp}.{nanos % 10**9:09d}{zone} {kind} {action} {actor.get('ID', '')}"
    return text + (f" ({attrs})" if attrs else "")


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.timestamps import parse_timestamp

    params = {"since": parse_timestamp(args.since) if args.since else None,
              "until": parse_timestamp(args.until) if args.until else None,
              "filters": encode_filters(args.filter)}
    template = None
    if args.format:
        from sampan.cli.formatting import render_each

        template = args.format
    for event in ctx.client.json_stream("GET", "/events", params):
        if template is not None:
            ctx.stdout.write(render_each(template, [event]))
        else:
            ctx.out(_line(event))
        ctx.stdout.flush()
    return 0
