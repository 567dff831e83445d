"""Streaming a response body (export, save) into ``-o FILE`` or a non-terminal stdout."""

from __future__ import annotations

import os
import sys

from sampan.cli.errors import StatusError
from sampan.cli.terminal import is_terminal
from sampan.client.http11 import Response


def write_body(response: Response, output: str, what: str) -> None:
    """Writes atomically to ``output`` (temp + rename), or to stdout when it is empty."""
    try:
        if not output:
            if is_terminal(sys.stdout.fileno()):
                raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o "
                                  "flag or redirect")
            sys.stdout.flush()
            for chunk in response.chunks():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(1, view):]
            return
        temp = f"{output}.{os.getpid()}.tmp"
        try:
            with open(temp, "wb") as handle:
                for chunk in response.chunks():
                    handle.write(chunk)
            os.replace(temp, output)
        except OSError as error:
            raise StatusError(1, f"failed to save {what}: {error}") from error
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    finally:
        response.close()
