"""``sampan login [-u USER] [-p PASS | --password-stdin] [SERVER]``

The daemon checks the credentials (``POST /auth``); on success they are stored, base64
``user:password`` as docker does, in ``<config dir>/config.json`` (mode 0600).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError

SUMMARY = "Authenticate to a registry"
DEFAULT_SERVER = "https://index.docker.io/v1/"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] [SERVER]", SUMMARY)
    parser.add_argument("-p", "--password", default="", help="Password or Personal Access Token")
    parser.add_argument("--password-stdin", action="store_true",
                        help="Take the Password or Personal Access Token from stdin")
    parser.add_argument("-u", "--username", default="", help="Username")
    parser.add_argument("server", nargs="?", default=DEFAULT_SERVER, metavar="SERVER")
    return parser.parse_args(argv)


def config_path(ctx: Context) -> str:
    return os.path.join(ctx.config_dir, "config.json")


def read_config(ctx: Context) -> dict[str, object]:
    try:
        with open(config_path(ctx)) as handle:
            loaded = json.load(handle)
            return loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        return {}


def write_config(ctx: Context, config: dict[str, object]) -> None:
    os.makedirs(ctx.config_dir, mode=0o700, exist_ok=True)
    temp = config_path(ctx) + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent="\t")
    os.replace(temp, config_path(ctx))


def run(ctx: Context, args: argparse.Namespace) -> int:
    password = args.password
    if args.password and args.password_stdin:
        raise StatusError(1, "--password and --password-stdin are mutually exclusive")
    if args.password_stdin:
        if not args.username:
            raise StatusError(1, "Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    username = args.username
    if not username:
        ctx.stdout.write("Username: ")
        ctx.stdout.flush()
        username = sys.stdin.readline().strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if args.password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    result = ctx.client.post("/auth", body={"username": username, "password": password,
                                            "serveraddress": args.server}) or {}
    config = read_config(ctx)
    auths = config.setdefault("auths", {})
    assert isinstance(auths, dict)
    auths[args.server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    write_config(ctx, config)
    ctx.out(str(result.get("Status") or "Login Succeeded"))
    return 0
