"""list [--format table|json] [-q]: every container under --root."""


from __future__ import annotations

import json
import sys

from sampan.runtime import state
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec
from sampan.runtime.container import Container

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {"format": (True, ("f",)), "quiet": (False, ("q",))}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    states = []
    for container_id in state.list_ids(ctx.root):
        try:
            states.append(Container(ctx.root, container_id).oci_state())
        except Exception:
            continue
    for item in states:
        item["owner"] = item.get("owner") or "root"
    if values.get("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif values.get("format") == "json":
        sys.stdout.write(json.dumps(states) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for row in rows:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                             .rstrip() + "\n")
    return 0
