"""``sampan attach [--no-stdin] [--sig-proxy] [--detach-keys K] CONTAINER``"""

from __future__ import annotations

import argparse
import json

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError
from sampan.client.api import quote

SUMMARY = "Attach local standard input, output, and error streams to a running container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER", SUMMARY)
    parser.add_argument("--detach-keys", default=None,
                        help="Override the key sequence for detaching a container")
    parser.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    parser.add_argument("--sig-proxy", default="true", choices=["true", "false"],
                        help="Proxy all received signals to the process")
    parser.add_argument("container", metavar="CONTAINER")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.session import interact, proxy_signals
    from sampan.cli.streams import DEFAULT_DETACH_KEYS, parse_detach_keys

    info = ctx.client.get(f"/containers/{quote(args.container)}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise StatusError(1, "You cannot attach to a restarting container, wait until it "
                          "is running")
    try:
        keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    except ValueError as error:
        raise StatusError(1, str(error)) from error
    path = f"/containers/{quote(info['Id'])}"
    tty = bool(info["Config"].get("Tty"))
    stdin = not args.no_stdin and bool(info["Config"].get("OpenStdin"))
    waiting = ctx.client.request("POST", f"{path}/wait")
    sock, leftover = ctx.client.hijack(f"{path}/attach", {
        "stream": True, "stdin": stdin, "stdout": True, "stderr": True,
        "detachKeys": args.detach_keys})
    undo = proxy_signals(ctx, info["Id"]) if args.sig_proxy == "true" and not tty else None
    try:
        result = interact(ctx, sock, leftover, tty=tty, attach_stdin=stdin, detach_keys=keys,
                          resize_path=f"{path}/resize")
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
