"""run [--detach] [create flags] <id>: create and start; without --detach, wait for it.

In the foreground the runtime forwards signals to the container, proxies its tty when
there is no --console-socket, returns the container's exit status, and deletes it.
"""


from __future__ import annotations

from sampan.runtime import foreground
from sampan.runtime.cli import create as create_verb
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.create import create
from sampan.runtime.lifecycle import delete, start

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {**create_verb.FLAGS, "detach": (False, ("d",)), "keep": (False, ())}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container_id = need_id(positionals, "run")
    detach = bool(values.get("detach"))
    if not detach:
        foreground.become_subreaper()
    options = create_verb.options_from(values, foreground_tty=not detach)
    created = create(ctx.root, container_id, options)
    try:
        start(ctx.root, container_id)
    except BaseException:
        delete(ctx.root, container_id, force=True)
        raise
    if detach:
        return 0
    try:
        return foreground.wait_for(created.state["pid"], created.pty_master)
    finally:
        if not values.get("keep"):
            delete(ctx.root, container_id, force=True)
