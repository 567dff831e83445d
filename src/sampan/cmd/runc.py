"""Entry point of the ``sampan-runc`` command."""

import sys

from sampan.runtime.cli.main import main as _main


def main() -> None:
    if sys.argv[1:] == ["--standby"]:
        from sampan.runtime.standby import serve

        sys.exit(serve())
    sys.exit(_main())
