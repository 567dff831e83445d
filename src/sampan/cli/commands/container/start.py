"""``sampan start [-a] [-i] [--detach-keys K] CONTAINER...``"""

from __future__ import annotations

import argparse
import json

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.cli.errors import StatusError
from sampan.client.api import quote

SUMMARY = "Start one or more stopped containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER [CONTAINER...]", SUMMARY)
    parser.add_argument("-a", "--attach", action="store_true",
                        help="Attach STDOUT/STDERR and forward signals")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="Attach container's STDIN")
    parser.add_argument("--detach-keys", default=None,
                        help="Override the key sequence for detaching a container")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if not (args.attach or args.interactive):
        return for_each(ctx, args.containers,
                        lambda name: ctx.client.post(f"/containers/{quote(name)}/start"))
    if len(args.containers) > 1:
        raise StatusError(1, "you cannot start and attach multiple containers at once")
    from sampan.cli.session import interact, proxy_signals
    from sampan.cli.streams import DEFAULT_DETACH_KEYS, parse_detach_keys

    name = args.containers[0]
    info = ctx.client.get(f"/containers/{quote(name)}/json")
    path = f"/containers/{quote(info['Id'])}"
    tty = bool(info["Config"].get("Tty"))
    stdin = args.interactive and bool(info["Config"].get("OpenStdin"))
    sock, leftover = ctx.client.hijack(f"{path}/attach", {
        "stream": True, "stdin": stdin, "stdout": True, "stderr": True,
        "detachKeys": args.detach_keys})
    waiting = ctx.client.request("POST", f"{path}/wait", {"condition": "next-exit"})
    undo = proxy_signals(ctx, info["Id"]) if not tty else None
    try:
        result = interact(ctx, sock, leftover, tty=tty, attach_stdin=stdin,
                          detach_keys=parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS),
                          resize_path=f"{path}/resize",
                          after_setup=lambda: ctx.client.post(f"{path}/start"))
    finally:
        if undo is not None:
            undo()
    if result == "detached":
        waiting.close()
        return 0
    try:
        body = json.loads(waiting.read() or b"{}")
    finally:
        waiting.close()
    return int(body.get("StatusCode", 0))
