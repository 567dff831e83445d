"""``inspect`` for every object kind: fetch each name, print a JSON array or ``--format``.

Like docker, objects found are printed even when others are missing; each missing one
prints an error and the exit status is 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sampan.cli.context import Context
from sampan.client.api import quote
from sampan.client.errors import DaemonError

Fetch = Callable[[Context, str], Any]


def fetch_container(ctx: Context, name: str, size: bool = False) -> Any:
    return ctx.client.get(f"/containers/{quote(name)}/json", {"size": True if size else None})


def fetch_image(ctx: Context, name: str) -> Any:
    return ctx.client.get(f"/images/{quote(name, safe='/:@')}/json")


def fetch_network(ctx: Context, name: str) -> Any:
    return ctx.client.get(f"/networks/{quote(name)}")


def fetch_volume(ctx: Context, name: str) -> Any:
    return ctx.client.get(f"/volumes/{quote(name)}")


FETCHERS: dict[str, Fetch] = {"container": fetch_container, "image": fetch_image,
                              "network": fetch_network, "volume": fetch_volume}


def inspect_all(ctx: Context, names: list[str], format_text: str,
                kinds: list[str], size: bool = False) -> int:
    found: list[Any] = []
    failed = False
    for name in names:
        item = None
        last_error: DaemonError | None = None
        for kind in kinds:
            try:
                item = (fetch_container(ctx, name, size) if kind == "container"
                        else FETCHERS[kind](ctx, name))
                break
            except DaemonError as error:
                if error.status != 404:
                    raise
                last_error = error
        if item is None:
            failed = True
            if len(kinds) > 1:
                ctx.err(f"Error: No such object: {name}")
            elif last_error is not None:
                ctx.err(f"Error response from daemon: {last_error.message}")
            continue
        found.append(item)
    if format_text:
        from sampan.cli.formatting import render_each

        ctx.stdout.write(render_each(format_text, found))
    else:
        ctx.out(json.dumps(found, indent=4, ensure_ascii=False) if found else "[]")
    return 1 if failed else 0
