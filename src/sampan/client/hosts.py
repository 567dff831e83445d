"""Where the daemon listens: ``-H`` / ``SAMPAN_HOST`` / ``DOCKER_HOST`` style addresses."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "unix:///run/sampan.sock"


@dataclass(frozen=True)
class DaemonAddress:
    """``scheme`` is ``unix`` (``address`` is a socket path) or ``tcp`` (``host:port``)."""

    scheme: str
    address: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def tcp_endpoint(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


def parse_host(text: str) -> DaemonAddress:
    """``unix:///run/x.sock``, ``/run/x.sock``, ``tcp://127.0.0.1:2375``, ``fd://`` (the
    default socket). Raises ValueError for anything else."""
    if not text:
        text = DEFAULT_HOST
    if text.startswith("/"):
        return DaemonAddress("unix", text)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"invalid daemon address: {text}")
    if scheme == "unix":
        if not rest:
            raise ValueError(f"invalid daemon address: {text}")
        return DaemonAddress("unix", rest)
    if scheme == "fd":
        return parse_host(DEFAULT_HOST)
    if scheme in ("tcp", "http"):
        address = rest.rstrip("/")
        if ":" not in address.rsplit("]", 1)[-1]:
            address += ":2375"
        return DaemonAddress("tcp", address)
    raise ValueError(f"unsupported daemon address scheme: {scheme}")
