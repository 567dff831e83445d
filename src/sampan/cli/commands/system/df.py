"""``sampan system df [-v] [--format]``"""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context

SUMMARY = "Show sampan disk usage"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS]", SUMMARY)
    parser.add_argument("--format", default="", help="Format output using a custom template")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show detailed information")
    return parser.parse_args(argv)


def _row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict[str, str]:
    from sampan.cli.units import human_size

    share = f" ({reclaimable * 100 // size}%)" if size else ""
    return {"Type": kind, "TotalCount": str(total), "Active": str(active),
            "Size": human_size(size, 3), "Reclaimable": human_size(reclaimable, 3) + share}


def run(ctx: Context, args: argparse.Namespace) -> int:
    from sampan.cli.formatting import render_rows

    usage: dict[str, Any] = ctx.client.get("/system/df") or {}
    images = usage.get("Images") or []
    containers = usage.get("Containers") or []
    volumes = usage.get("Volumes") or []
    caches = usage.get("BuildCache") or []
    image_size = int(usage.get("LayersSize") or sum(i.get("Size", 0) for i in images))
    active_images = [i for i in images if i.get("Containers", 0) > 0]
    rows = [
        _row("Images", len(images), len(active_images), image_size,
             image_size - sum(i.get("Size", 0) for i in active_images)),
        _row("Containers", len(containers),
             sum(1 for c in containers if c.get("State") == "running"),
             sum(c.get("SizeRw", 0) or 0 for c in containers),
             sum(c.get("SizeRw", 0) or 0 for c in containers if c.get("State") != "running")),
        _row("Local Volumes", len(volumes),
             sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0),
             sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes),
             sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                 if (v.get("UsageData") or {}).get("RefCount", 0) == 0)),
        _row("Build Cache", len(caches), sum(1 for c in caches if c.get("InUse")),
             sum(c.get("Size", 0) for c in caches),
             sum(c.get("Size", 0) for c in caches if not c.get("InUse"))),
    ]
    fmt = args.format or ("table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t"
                          "{{.Reclaimable}}")
    titles = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
    ctx.stdout.write(render_rows(fmt, rows, titles))
    return 0
