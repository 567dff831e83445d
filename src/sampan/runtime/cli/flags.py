"""A small parser for runc's command line (urfave/cli conventions), cheaper than argparse.

Flags come before positionals; ``--flag value``, ``--flag=value`` and ``-f value`` are all
accepted; boolean flags take no value (``--detach``, ``-d``); the first positional ends flag
parsing, so ``exec <id> sh -c 'ls -l'`` keeps ``-c`` for the command.
"""


from __future__ import annotations

from sampan import errdefs

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# name -> (takes a value, aliases); repeated flags with a value are collected in a list
FlagSpec = dict[str, tuple[bool, tuple[str, ...]]]
REPEATABLE = {"env", "cap", "additional-gids"}


def parse(args: list[str], spec: FlagSpec, verb: str) -> tuple[dict[str, Any], list[str]]:
    lookup: dict[str, tuple[str, bool]] = {}
    for name, (takes_value, aliases) in spec.items():
        for alias in (name, *aliases):
            lookup[alias] = (name, takes_value)
    values: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        key, has_inline, inline = arg.lstrip("-").partition("=")
        if key not in lookup:
            raise errdefs.InvalidParameter(f"{verb}: flag provided but not defined: -{key}")
        name, takes_value = lookup[key]
        if takes_value:
            if has_inline:
                value: Any = inline
            else:
                index += 1
                if index >= len(args):
                    raise errdefs.InvalidParameter(f"{verb}: flag needs an argument: -{key}")
                value = args[index]
            if name in REPEATABLE:
                values.setdefault(name, []).append(value)
            else:
                values[name] = value
        else:
            values[name] = inline.lower() not in ("false", "0") if has_inline else True
        index += 1
    return values, args[index:]


def need_id(positionals: list[str], verb: str) -> str:
    if not positionals:
        raise errdefs.InvalidParameter(f'"{verb}" requires a container id')
    return positionals[0]


def int_flag(values: dict[str, Any], name: str, default: int = 0) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid value {raw!r} for --{name}") from None
