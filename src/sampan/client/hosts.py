"""Where the daemon listens: ``-H`` / ``SAMPAN_HOST`` / ``DOCKER_HOST`` style addresses."""

from __future__ import annotations

DEFAULT_HOST = "unix:///run/sampan.sock"


class DaemonAddress:
    """``scheme`` is ``unix`` (``address`` is a socket path) or ``tcp`` (``host:port``).

    A plain class, not a dataclass: ``dataclasses`` costs 6 ms of start-up (it imports
    ``inspect``) and every CLI command parses an address."""

    __slots__ = ("address", "scheme")

    def __init__(self, scheme: str, address: str) -> None:
        self.scheme = scheme
        self.address = address

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DaemonAddress) and (self.scheme, self.address) == (
            other.scheme, other.address)

    def __hash__(self) -> int:
        return hash((self.scheme, self.address))

    def __repr__(self) -> str:
        return f"DaemonAddress({self.scheme!r}, {self.address!r})"

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
