"""kill [--all] <id> [signal]: signal the init (or every process of the container)."""


from __future__ import annotations

import signal

from sampan import errdefs
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec, need_id
from sampan.runtime.lifecycle import kill

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {"all": (False, ("a",))}


def parse_signal(raw: str) -> int:
    if raw.isdigit():
        number = int(raw)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = raw.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        value = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ \
            else None
        if value is not None:
            return int(value)
    raise errdefs.InvalidParameter(f"unknown signal {raw!r}")


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    container_id = need_id(positionals, "kill")
    signum = parse_signal(positionals[1]) if len(positionals) > 1 else signal.SIGTERM
    kill(ctx.root, container_id, signum, bool(values.get("all")))
    return 0
