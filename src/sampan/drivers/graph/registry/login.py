"""Login check (``POST /auth``): do these credentials open ``GET /v2/`` of the registry?

Nothing is stored by the daemon (the CLI keeps credentials and sends them with each pull
or push). A registry that asks for nothing accepts any login, as with dockerd.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from sampan import errdefs

from .auth import AuthConfig, basic_header
from .hosts import DEFAULT_DOMAIN
from .session import Authorizer, RegistryClient, describe

_HUB_ADDRESSES = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class LoginResult:
    status: str
    identity_token: str = ""


def registry_host(server_address: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/`` -> ``h:5000``."""
    address = server_address.strip()
    if not address or address in _HUB_ADDRESSES or address.rstrip("/") in _HUB_ADDRESSES:
        return DEFAULT_DOMAIN
    if "://" in address:
        address = address.split("://", 1)[1]
    host = address.split("/", 1)[0]
    return DEFAULT_DOMAIN if host in _HUB_ADDRESSES else host


async def login(client: RegistryClient, auth: AuthConfig) -> LoginResult:
    host = registry_host(auth.server_address)
    endpoint, challenge = await client.ping(host)
    url = f"{endpoint.base_url}/v2/"
    if challenge is None:
        return LoginResult("Login Succeeded")
    http = client.http(endpoint)
    identity = ""
    if challenge.scheme == "basic":
        if not auth.has_password:
            raise errdefs.Forbidden(describe("GET", url, Exception("no basic auth credentials")))
        header = basic_header(auth)
    elif challenge.scheme == "bearer":
        token = await client.token(Authorizer(challenge, auth, ()), endpoint)
        header = f"Bearer {token.value}"
        identity = token.refresh_token
    else:
        raise errdefs.NotImplementedFeature(
            f"registry {host} wants unsupported authentication {challenge.scheme!r}"
        )
    try:
        response = await http.get(url, headers={"Authorization": header})
    except httpx.TransportError as exc:
        raise errdefs.Unavailable(describe("GET", url, exc)) from exc
    if response.status_code != 200:
        raise errdefs.Forbidden(
            f"login attempt to {url} failed with status: {response.status_code} "
            f"{response.reason_phrase}"
        )
    return LoginResult("Login Succeeded", identity)
