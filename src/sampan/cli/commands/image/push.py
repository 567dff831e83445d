"""``sampan push [-a] [-q] NAME[:TAG]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Upload an image to a registry"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] NAME[:TAG]", SUMMARY)
    parser.add_argument("-a", "--all-tags", action="store_true",
                        help="Push all tags of an image to the repository")
    parser.add_argument("--platform", default="", help="Push a platform-specific manifest")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    parser.add_argument("reference", metavar="NAME[:TAG]")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    import io

    from sampan.cli.images import auth_header, registry_of, split_reference
    from sampan.cli.progress import display

    name, tag = split_reference(args.reference)
    headers = auth_header(ctx, registry_of(name)) or {"X-Registry-Auth": "e30="}
    params = {"tag": None if args.all_tags else tag, "platform": args.platform or None}
    messages = ctx.client.json_stream("POST", f"/images/{quote(name, safe='/:')}/push",
                                      params, headers=headers)
    display(messages, out=io.StringIO() if args.quiet else ctx.stdout,
            tty=False if args.quiet else None)
    return 0
