"""The ``prune`` commands: confirm, call ``POST /<kind>/prune``, report what went."""

from __future__ import annotations

import sys
from typing import Any

from sampan.cli.context import Context
from sampan.cli.units import human_size
from sampan.client.api import encode_filters


def confirm(ctx: Context, warning: str, force: bool) -> bool:
    if force:
        return True
    ctx.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    ctx.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def prune(ctx: Context, kind: str, filters: list[str], extra: dict[str, Any] | None = None,
          label: str = "") -> int:
    """Returns the bytes reclaimed; prints the deleted objects' names."""
    params: dict[str, Any] = {"filters": encode_filters(filters)}
    result = ctx.client.post(f"/{kind}/prune", params) or {}
    key = {"containers": "ContainersDeleted", "networks": "NetworksDeleted",
           "volumes": "VolumesDeleted"}.get(kind)
    if kind == "images":
        deleted = result.get("ImagesDeleted") or []
        if deleted:
            ctx.out(f"Deleted {label or 'Images'}:")
            for item in deleted:
                for verb, value in item.items():
                    ctx.out(f"{verb.lower()}: {value}")
            ctx.out()
    elif key and result.get(key):
        ctx.out(f"Deleted {label or kind.capitalize()}:")
        for name in result[key]:
            ctx.out(name)
        ctx.out()
    return int(result.get("SpaceReclaimed") or 0)


def report_space(ctx: Context, reclaimed: int) -> None:
    ctx.out(f"Total reclaimed space: {human_size(reclaimed)}")
