"""``sampan commit [-a] [-c] [-m] [-p] CONTAINER [REPOSITORY[:TAG]]``"""

from __future__ import annotations

import argparse

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context

SUMMARY = "Create a new image from a container's changes"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", SUMMARY)
    parser.add_argument("-a", "--author", default="", help="Author")
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="Apply Dockerfile instruction to the created image")
    parser.add_argument("-m", "--message", default="", help="Commit message")
    parser.add_argument("-p", "--pause", default="true", choices=["true", "false"],
                        help="Pause container during commit")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("reference", metavar="REPOSITORY[:TAG]", nargs="?")
    return parser.parse_args(argv)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.images import split_reference

    repo = tag = None
    if args.reference:
        repo, tag = split_reference(args.reference)
    params = {"container": args.container, "repo": repo, "tag": tag,
              "comment": args.message or None, "author": args.author or None,
              "pause": args.pause == "true", "changes": args.change or None}
    result = ctx.client.post("/commit", params, body={})
    ctx.out(str(result.get("Id", "")))
    return 0
