"""``sampan logs [-f] [-t] [--tail N] [--since] [--until] [--details] CONTAINER``"""

from __future__ import annotations

import argparse
import sys

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Fetch the logs of a container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER", SUMMARY)
    parser.add_argument("--details", action="store_true", help="Show extra details")
    parser.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    parser.add_argument("--since", default=None, help="Show logs since timestamp")
    parser.add_argument("-n", "--tail", default="all",
                        help="Number of lines to show from the end of the logs")
    parser.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    parser.add_argument("--until", default=None, help="Show logs before a timestamp")
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.streams import _write_all
    from sampan.cli.timestamps import parse_timestamp
    from sampan.client.stdcopy import STDERR, FrameSplitter

    info = ctx.client.get(f"/containers/{quote(args.container)}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {"stdout": True, "stderr": True, "follow": args.follow or None,
              "timestamps": args.timestamps or None, "details": args.details or None,
              "tail": args.tail,
              "since": parse_timestamp(args.since) if args.since else None,
              "until": parse_timestamp(args.until) if args.until else None}
    response = ctx.client.request("GET", f"/containers/{quote(info['Id'])}/logs", params)
    splitter = None if tty else FrameSplitter()
    sys.stdout.flush()
    try:
        for chunk in response.chunks():
            if splitter is None:
                _write_all(1, chunk)
                continue
            for stream, payload in splitter.feed(chunk):
                _write_all(2 if stream == STDERR else 1, payload)
    finally:
        response.close()
    return 0
