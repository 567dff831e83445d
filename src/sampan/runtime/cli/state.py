"""state <id>: the OCI state object as indented JSON."""

import json
import sys
from typing import Any

from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.container import Container

FLAGS: FlagSpec = {}


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container = Container(ctx.root, need_id(positionals, "state"))
    sys.stdout.write(json.dumps(container.oci_state(), indent=2) + "\n")
    return 0
