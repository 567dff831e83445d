"""``sampan run [OPTIONS] IMAGE [COMMAND] [ARG...]``

Docker's order: create (pulling if the image is missing), attach, register a wait for the
next exit (or the removal, with ``--rm``), start, stream until the output ends or the user
detaches, then exit with the container's status. Exit codes: 125 when sampan itself
failed, 126 when the command cannot be run, 127 when it is not found.
"""

from __future__ import annotations

import argparse
import contextlib
import json

from sampan.cli.arguments import new_parser, split_at_command
from sampan.cli.container_options import add_options
from sampan.cli.context import Context
from sampan.cli.creating import create_container, start_error_status
from sampan.cli.errors import StatusError, UsageError
from sampan.client.api import quote
from sampan.client.errors import ClientError, DaemonError

SUMMARY = "Create and run a new container from an image"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] IMAGE [COMMAND] [ARG...]", SUMMARY, add_help=False)
    add_options(parser)
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Run container in background and print container ID")
    parser.add_argument("--detach-keys", default=None,
                        help="Override the key sequence for detaching a container")
    parser.add_argument("--sig-proxy", default="true", choices=["true", "false"],
                        help="Proxy received signals to the process")
    parser.add_argument("image", metavar="IMAGE", nargs="?")
    head, command = split_at_command(parser, argv, 1)
    args = parser.parse_args(head)
    if not args.image:
        raise UsageError(f"\"{prog}\" requires at least 1 argument.\nSee '{prog} --help'.")
    args.command = command
    return args


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.streams import DEFAULT_DETACH_KEYS, parse_detach_keys

    try:
        detach_keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    except ValueError as error:
        raise StatusError(125, f"sampan: {error}") from error
    container = create_container(ctx, args, args.image, args.command)
    path = f"/containers/{quote(container)}"
    if args.detach:
        _start(ctx, path)
        ctx.out(container)
        return 0

    attach = {a.lower() for a in args.attach} or (
        {"stdout", "stderr"} | ({"stdin"} if args.interactive else set()))
    sock, leftover = ctx.client.hijack(f"{path}/attach", {
        "stream": True, "stdin": "stdin" in attach, "stdout": "stdout" in attach,
        "stderr": "stderr" in attach, "detachKeys": args.detach_keys})
    waiting = ctx.client.request("POST", f"{path}/wait",
                                 {"condition": "removed" if args.rm else "next-exit"})
    from sampan.cli.session import interact, proxy_signals

    undo_signals = None
    if args.sig_proxy == "true" and not args.tty:
        undo_signals = proxy_signals(ctx, container)
    try:
        result = interact(ctx, sock, leftover, tty=args.tty, attach_stdin="stdin" in attach,
                          detach_keys=detach_keys, resize_path=f"{path}/resize",
                          after_setup=lambda: _start(ctx, path, waiting))
    finally:
        if undo_signals is not None:
            undo_signals()
    if result == "detached":
        waiting.close()
        return 0
    return _exit_status(waiting)


def _start(ctx: Context, path: str, waiting: object | None = None) -> None:
    try:
        ctx.client.post(f"{path}/start")
    except DaemonError as error:
        if waiting is not None:
            with contextlib.suppress(Exception):
                waiting.close()  # type: ignore[attr-defined]
        raise StatusError(start_error_status(error.message),
                          f"sampan: Error response from daemon: {error.message}") from error


def _exit_status(waiting: object) -> int:
    try:
        body = waiting.read()  # type: ignore[attr-defined]
    except ClientError as error:
        raise StatusError(125, f"sampan: {error}") from error
    finally:
        waiting.close()  # type: ignore[attr-defined]
    try:
        result = json.loads(body)
    except ValueError as error:
        raise StatusError(125, "sampan: malformed wait result from daemon") from error
    message = (result.get("Error") or {}).get("Message")
    if message:
        raise StatusError(125, f"sampan: Error response from daemon: {message}")
    return int(result.get("StatusCode", 125))
