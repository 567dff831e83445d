"""What every command receives: where the daemon is, the API client, and the output streams."""

from __future__ import annotations

import os
import sys

from sampan.client.api import APIClient
from sampan.client.hosts import DaemonAddress

TYPE_CHECKING = False  # typing costs start-up time: imported for the type checker only
if TYPE_CHECKING:
    from typing import TextIO


class Context:
    """Per-invocation state; the API client is made on first use."""

    def __init__(self, address: DaemonAddress, config_dir: str,
                 stdout: TextIO | None = None, stderr: TextIO | None = None,
                 debug: bool = False) -> None:
        self.address = address
        self.config_dir = config_dir
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.debug = debug
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = APIClient(self.address)
        return self._client

    def out(self, text: str = "", end: str = "\n") -> None:
        self.stdout.write(text + end)

    def err(self, text: str) -> None:
        self.stdout.flush()
        self.stderr.write(text + "\n")
        self.stderr.flush()


def default_config_dir() -> str:
    explicit = os.environ.get("SAMPAN_CONFIG")
    if explicit:
        return explicit
    return os.path.join(os.path.expanduser("~"), ".sampan")
