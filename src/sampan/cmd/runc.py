"""Entry point of the ``sampan-runc`` command."""

import sys

from sampan.runtime.cli.main import main as _main


def main() -> None:
    sys.exit(_main())
