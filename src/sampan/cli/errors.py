"""How a command ends other than by returning: an exit status with an optional message."""

from __future__ import annotations


class StatusError(Exception):
    """Exit with ``status``; ``message`` (if any) goes to stderr first."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UsageError(StatusError):
    """Bad flags or arguments: docker exits 125 for these (``"docker run" requires...``)."""

    def __init__(self, message: str) -> None:
        super().__init__(125, message)
