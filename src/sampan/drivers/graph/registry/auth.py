"""Registry credentials and challenges (Docker's token authentication specification).

A registry answers an unauthenticated request with ``401`` and a ``WWW-Authenticate``
challenge. ``Basic realm=".."`` wants the user's name and password on every request;
``Bearer realm="https://auth/token",service="reg",scope="repository:a/b:pull"`` sends the
client to the realm for a token::

    client ── GET /v2/ ─────────────────────────────────▶ registry
           ◀─ 401 WWW-Authenticate: Bearer realm,service ─
    client ── GET realm?service=..&scope=repository:a/b:pull,push ──▶ token server
              (Authorization: Basic user:password when the user gave credentials;
               POST grant_type=refresh_token when it has an identity token)
           ◀─ 200 {"token" | "access_token", "expires_in", "refresh_token"?} ─
    client ── GET /v2/a/b/manifests/x, Authorization: Bearer <token> ──▶ registry

Credentials reach the daemon in ``X-Registry-Auth`` (base64url JSON ``AuthConfig``:
``username``, ``password``, ``auth`` (base64 ``user:pass``), ``identitytoken``,
``registrytoken``, ``serveraddress``) or in the body of ``POST /auth``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sampan import errdefs


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    @property
    def empty(self) -> bool:
        return not (self.has_password or self.identity_token or self.registry_token)


def auth_config_from_json(value: Any) -> AuthConfig:
    """An ``AuthConfig`` from its JSON object (``POST /auth`` body, decoded header)."""
    if value is None:
        return AuthConfig()
    if not isinstance(value, dict):
        raise errdefs.InvalidParameter("registry credentials must be a JSON object")
    username = str(value.get("username") or "")
    password = str(value.get("password") or "")
    encoded = value.get("auth")
    if encoded and not (username and password):
        try:
            decoded = base64.b64decode(str(encoded)).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise errdefs.InvalidParameter(f"invalid auth field in credentials: {exc}") from exc
        user, sep, secret = decoded.partition(":")
        if sep:
            username, password = user, secret
    return AuthConfig(
        username=username,
        password=password,
        identity_token=str(value.get("identitytoken") or ""),
        registry_token=str(value.get("registrytoken") or ""),
        server_address=str(value.get("serveraddress") or ""),
    )


def decode_registry_auth(header: str | None) -> AuthConfig:
    """Decode ``X-Registry-Auth`` (base64url JSON, padding optional; ``e30=`` is ``{}``)."""
    if not header:
        return AuthConfig()
    text = header.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(padded)
        except (binascii.Error, ValueError) as exc:
            raise errdefs.InvalidParameter(f"invalid X-Registry-Auth header: {exc}") from exc
    try:
        value = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errdefs.InvalidParameter(f"invalid X-Registry-Auth header: {exc}") from exc
    return auth_config_from_json(value)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(,|$)')


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` values (RFC 7235; one challenge per header is the norm)."""
    found = []
    for header in headers:
        text = header.strip()
        while text:
            scheme, _, rest = text.partition(" ")
            params: dict[str, str] = {}
            position = 0
            while position < len(rest):
                match = _PARAM.match(rest, position)
                if match is None:
                    break
                value = match.group(2) if match.group(2) is not None else match.group(3)
                params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
                position = match.end()
            found.append(Challenge(scheme.lower(), params))
            text = rest[position:].strip()
    return found


def basic_header(auth: AuthConfig) -> str:
    token = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    return f"Basic {token}"


@dataclass
class Token:
    value: str
    expires_at: float
    refresh_token: str = ""

    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at - 5


def token_from_response(body: bytes, realm: str) -> Token:
    """``{"token": ..}`` or ``{"access_token": ..}``, ``expires_in`` (default 60 s)."""
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errdefs.Unavailable(f"token server {realm} answered invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise errdefs.Unavailable(f"token server {realm} answered no JSON object")
    token = value.get("token") or value.get("access_token")
    if not isinstance(token, str) or not token:
        raise errdefs.Unavailable(f"token server {realm} answered no token")
    expires = value.get("expires_in")
    lifetime = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
    refresh = value.get("refresh_token")
    return Token(token, time.monotonic() + lifetime, refresh if isinstance(refresh, str) else "")


def scope_for(repository: str, actions: tuple[str, ...]) -> str:
    return f"repository:{repository}:{','.join(actions)}"
