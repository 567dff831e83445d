"""``sampan exec [OPTIONS] CONTAINER COMMAND [ARG...]``: exits with the command's status."""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser, split_at_command
from sampan.cli.context import Context
from sampan.cli.errors import StatusError, UsageError
from sampan.client.api import quote

SUMMARY = "Execute a command in a running container"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER COMMAND [ARG...]", SUMMARY)
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Detached mode: run command in the background")
    parser.add_argument("--detach-keys", default=None,
                        help="Override the key sequence for detaching a container")
    parser.add_argument("-e", "--env", action="append", default=[],
                        help="Set environment variables")
    parser.add_argument("--env-file", action="append", default=[],
                        help="Read in a file of environment variables")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="Keep STDIN open even if not attached")
    parser.add_argument("--privileged", action="store_true",
                        help="Give extended privileges to the command")
    parser.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    parser.add_argument("-u", "--user", default="", help="Username or UID")
    parser.add_argument("-w", "--workdir", default="",
                        help="Working directory inside the container")
    parser.add_argument("container", metavar="CONTAINER", nargs="?")
    head, command = split_at_command(parser, argv, 1)
    args = parser.parse_args(head)
    if not args.container or not command:
        raise UsageError(f"\"{prog}\" requires at least 2 arguments.\nSee '{prog} --help'.")
    args.command = command
    return args


def run(ctx: Context, args: argparse.Namespace) -> int:
    import os

    from sampan.cli.streams import DEFAULT_DETACH_KEYS, parse_detach_keys

    env = []
    for path in args.env_file:
        from sampan.cli.container_options import _read_env_file

        env += _read_env_file(path)
    for item in args.env:
        if "=" in item:
            env.append(item)
        elif item in os.environ:
            env.append(f"{item}={os.environ[item]}")
    body = {"User": args.user, "Privileged": args.privileged, "Tty": args.tty,
            "AttachStdin": args.interactive and not args.detach,
            "AttachStdout": not args.detach, "AttachStderr": not args.detach,
            "DetachKeys": args.detach_keys or "", "Env": env or None,
            "WorkingDir": args.workdir, "Cmd": args.command}
    created = ctx.client.post(f"/containers/{quote(args.container)}/exec", body=body)
    exec_id = created["Id"]
    if args.detach:
        ctx.client.post(f"/exec/{exec_id}/start", body={"Detach": True, "Tty": args.tty})
        return 0
    try:
        keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    except ValueError as error:
        raise StatusError(1, str(error)) from error
    from sampan.cli.session import interact

    sock, leftover = ctx.client.hijack(f"/exec/{exec_id}/start",
                                       body={"Detach": False, "Tty": args.tty})
    result = interact(ctx, sock, leftover, tty=args.tty, attach_stdin=args.interactive,
                      detach_keys=keys, resize_path=f"/exec/{exec_id}/resize")
    if result == "detached":
        return 0
    import time

    inspected = ctx.client.get(f"/exec/{exec_id}/json")
    deadline = time.monotonic() + 5
    while inspected.get("Running") and time.monotonic() < deadline:
        # The output ended a moment before the daemon recorded the exit.
        time.sleep(0.02)
        inspected = ctx.client.get(f"/exec/{exec_id}/json")
    code = inspected.get("ExitCode")
    return 126 if code is None else int(code)
