"""What can go wrong talking to the daemon, as the CLI needs to tell it apart."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error raised by the client package."""


class DaemonUnreachable(ClientError):
    """Nothing answers on the daemon's socket (not started, wrong host, no permission)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot connect to the sampan daemon at {host}: {reason}")
        self.host = host
        self.reason = reason


class DaemonError(ClientError):
    """The daemon answered with an error status; ``message`` is its ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404


class ProtocolError(ClientError):
    """The daemon's answer is not the HTTP we expect."""
