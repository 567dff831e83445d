"""argparse, configured the way Docker's flags behave.

Flag errors exit 125 with ``See 'sampan run --help'.``; commands that take a command line
(``run``, ``create``, ``exec``) stop option parsing at the first positional after their own
(``sampan run busybox ls -l``: ``-l`` belongs to ``ls``).
"""

from __future__ import annotations

import argparse
import os

from sampan.cli.errors import UsageError

TYPE_CHECKING = False  # typing costs start-up time: imported for the type checker only
if TYPE_CHECKING:
    from typing import NoReturn


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter with the width given: without one it imports ``shutil`` (8 ms
    with the bz2 and lzma modules it drags in) on every ``add_argument``."""

    def __init__(self, prog: str) -> None:
        try:
            columns = os.get_terminal_size(1).columns
        except OSError:
            columns = int(os.environ.get("COLUMNS", "0") or 0) or 80
        super().__init__(prog, width=columns - 2)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\nSee '{self.prog} --help'.")


def new_parser(prog: str, usage: str, summary: str, add_help: bool = True) -> Parser:
    """``add_help=False`` for commands whose ``-h`` means something else (``--hostname``)."""
    parser = Parser(prog=prog, usage=f"{prog} {usage}".rstrip(), description=summary,
                    allow_abbrev=False, add_help=add_help, formatter_class=_Formatter)
    if not add_help:
        parser.add_argument("--help", action="help", help="Print usage")
    return parser


def _takes_value(parser: argparse.ArgumentParser) -> dict[str, bool]:
    table: dict[str, bool] = {}
    for action in parser._actions:
        for option in action.option_strings:
            table[option] = action.nargs != 0
    return table


def split_at_command(parser: argparse.ArgumentParser, argv: list[str],
                     leading_positionals: int) -> tuple[list[str], list[str]]:
    """(argv up to and including the first ``leading_positionals`` positionals, the rest).
    ``--`` before them is dropped, as Docker's non-interspersed flag sets do."""
    takes = _takes_value(parser)
    index = 0
    seen = 0
    head: list[str] = []
    while index < len(argv):
        token = argv[index]
        if seen >= leading_positionals:
            break
        if token == "--":
            index += 1
            head.extend(argv[index : index + leading_positionals - seen])
            index += leading_positionals - seen
            return head, argv[index:]
        if token.startswith("--"):
            head.append(token)
            if "=" not in token and takes.get(token, False) and index + 1 < len(argv):
                head.append(argv[index + 1])
                index += 1
        elif token.startswith("-") and len(token) > 1:
            head.append(token)
            for position in range(1, len(token)):
                if takes.get("-" + token[position], False):
                    if position == len(token) - 1 and index + 1 < len(argv):
                        head.append(argv[index + 1])
                        index += 1
                    break
        else:
            head.append(token)
            seen += 1
        index += 1
    return head, argv[index:]


def parse_key_values(items: list[str] | None) -> dict[str, str]:
    """``["a=1", "b"]`` -> ``{"a": "1", "b": ""}`` (labels, options)."""
    table: dict[str, str] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        table[key] = value
    return table
