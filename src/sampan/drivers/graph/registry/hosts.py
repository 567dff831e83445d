"""Which registry a reference names, and how to reach it: scheme, TLS and its CA.

Docker's rules, kept here in one place:

* ``docker.io`` is served by ``registry-1.docker.io``; everything else by the host itself.
* A registry is *insecure* when it is listed in ``insecure-registries`` (a ``host[:port]`` or
  a CIDR) or its address is in one of the listed CIDRs; ``127.0.0.0/8`` is always listed.
  An insecure registry is tried over HTTPS without verifying its certificate first, then over
  plain HTTP (dockerd does the same on every pull; we remember what worked per host).
* A secure registry is HTTPS only, verified against the system CAs plus every ``*.crt`` in
  ``<certs.d>/<host[:port]>/`` (``client.cert``/``client.key`` there are a client
  certificate). A CA there also makes a loopback registry verified: explicit trust
  configuration wins over the loopback default, so it can be tested.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field

from sampan import errdefs

DEFAULT_DOMAIN = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class Endpoint:
    """One way to reach a registry: ``https://host`` (verified or not) or ``http://host``."""

    host: str  # the reference's domain, e.g. "127.0.0.1:5000" or "docker.io"
    base_url: str  # e.g. "https://registry-1.docker.io"
    tls: ssl.SSLContext | None  # None for plain HTTP

    @property
    def scheme(self) -> str:
        return self.base_url.split("://", 1)[0]


@dataclass
class RegistryHosts:
    """Endpoints per registry host, from daemon configuration."""

    insecure: list[str] = field(default_factory=list)
    certs_dir: str = "/etc/sampan/certs.d"

    def __post_init__(self) -> None:
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        for item in [*DEFAULT_INSECURE_CIDRS, *self.insecure]:
            text = item.strip()
            if "://" in text:
                text = text.split("://", 1)[1]
            text = text.rstrip("/")
            try:
                self._networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if not text:
                    raise errdefs.InvalidParameter("empty insecure registry") from None
                self._names.add(text)
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}

    def is_insecure(self, host: str) -> bool:
        if host in self._names:
            return True
        hostname = _hostname(host)
        if hostname in self._names:
            return True
        for address in _addresses(hostname):
            if any(address in network for network in self._networks):
                return True
        return False

    def _host_dir(self, host: str) -> str | None:
        directory = os.path.join(self.certs_dir, host)
        return directory if os.path.isdir(directory) else None

    def has_ca(self, host: str) -> bool:
        directory = self._host_dir(host)
        return directory is not None and any(n.endswith(".crt") for n in os.listdir(directory))

    def tls_context(self, host: str, verify: bool) -> ssl.SSLContext:
        key = (host, verify)
        context = self._contexts.get(key)
        if context is not None:
            return context
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        directory = self._host_dir(host)
        if directory is not None:
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                try:
                    if name.endswith(".crt") and verify:
                        context.load_verify_locations(cafile=path)
                    elif name.endswith(".cert"):
                        key_path = path[: -len(".cert")] + ".key"
                        if not os.path.exists(key_path):
                            raise errdefs.InvalidParameter(
                                f"missing key {key_path} for client certificate {path}"
                            )
                        context.load_cert_chain(path, key_path)
                except (OSError, ssl.SSLError) as exc:
                    raise errdefs.InvalidParameter(
                        f"cannot load TLS file {path} for registry {host}: {exc}"
                    ) from exc
        self._contexts[key] = context
        return context

    def endpoints(self, host: str) -> list[Endpoint]:
        """Where to try ``host``, in order."""
        target = DOCKER_HUB_HOST if host == DEFAULT_DOMAIN else host
        if self.is_insecure(host) and not self.has_ca(host):
            return [
                Endpoint(host, f"https://{target}", self.tls_context(host, verify=False)),
                Endpoint(host, f"http://{target}", None),
            ]
        return [Endpoint(host, f"https://{target}", self.tls_context(host, verify=True))]


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _addresses(hostname: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(info[4][0]))
        except ValueError:
            continue
    return found
