"""state <id>: the OCI state object as indented JSON."""


from __future__ import annotations

import json
import sys

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.container import Container

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container = Container(ctx.root, need_id(positionals, "state"))
    sys.stdout.write(json.dumps(container.oci_state(), indent=2) + "\n")
    return 0
