"""``sampan history [-H] [-q] [--no-trunc] [--format] IMAGE``"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.client.api import quote

SUMMARY = "Show the history of an image"

TABLE = ("table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}")
TITLES = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
          "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] IMAGE", SUMMARY)
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("-H", "--human", default="true", choices=["true", "false"],
                        help="Print sizes and dates in human readable format")
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    parser.add_argument("image", metavar="IMAGE")
    return parser.parse_args(argv)


class HistoryRow:
    def __init__(self, entry: dict[str, Any], trunc: bool, human: bool) -> None:
        self.entry = entry
        self.trunc = trunc
        self.human = human

    @property
    def ID(self) -> str:
        from sampan.cli.listing import short_id

        identifier = str(self.entry.get("Id", ""))
        if identifier == "<missing>" or not self.trunc:
            return identifier
        return short_id(identifier)

    @property
    def CreatedSince(self) -> str:
        from sampan.cli.units import human_duration

        created = float(self.entry.get("Created", 0))
        if not self.human:
            return self.CreatedAt
        return human_duration(time.time() - created) + " ago"

    @property
    def CreatedAt(self) -> str:
        created = float(self.entry.get("Created", 0))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))
        return stamp[:-2] + ":" + stamp[-2:]

    @property
    def CreatedBy(self) -> str:
        from sampan.cli.units import ellipsis

        text = str(self.entry.get("CreatedBy", "")).replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        from sampan.cli.units import human_size

        size = int(self.entry.get("Size", 0))
        return human_size(size, 3) if self.human else str(size)

    @property
    def Comment(self) -> str:
        return str(self.entry.get("Comment", ""))

    def to_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ("Comment", "CreatedAt", "CreatedBy",
                                                        "CreatedSince", "ID", "Size")}


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows

    entries = ctx.client.get(f"/images/{quote(args.image, safe='/:@')}/history") or []
    rows = [HistoryRow(e, not args.no_trunc, args.human == "true") for e in entries]
    fmt = "{{.ID}}" if args.quiet else (args.format or TABLE)
    ctx.stdout.write(render_rows(fmt, rows, TITLES))
    return 0
