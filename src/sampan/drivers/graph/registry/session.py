"""Talking to one repository of one registry: endpoint choice, authorization, retries.

``RegistryClient`` lives as long as the daemon: one ``httpx.AsyncClient`` (a connection
pool) per endpoint, the scheme that worked per insecure host, and bearer tokens until they
expire. ``await client.session(host, repository, actions, auth)`` pings ``GET /v2/`` on the
host's endpoints in order (an insecure registry: HTTPS without verification, then HTTP),
answers the ``WWW-Authenticate`` challenge (see ``auth``) and returns a :class:`Session`
whose requests carry the right ``Authorization``.

Transient failures (connection refused or reset, timeouts, 429, 502, 503, 504) of requests
that may be repeated are retried with exponential backoff (0.25 s, 0.5 s, 1 s by default);
the last failure is raised as ``errdefs.Unavailable`` naming the request, like Docker's
``Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused``.

``httpx`` is imported here only; the package imports this module lazily, so a daemon that
never pulls never pays for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from sampan import errdefs

from .auth import (
    AuthConfig,
    Challenge,
    Token,
    basic_header,
    parse_challenges,
    scope_for,
    token_from_response,
)
from .hosts import Endpoint, RegistryHosts

log = logging.getLogger("sampan.registry")

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
USER_AGENT = "sampan/0.1 (linux)"


def registry_error_text(response: httpx.Response) -> str:
    """Docker's rendering of a registry error body: ``manifest unknown: manifest unknown``."""
    try:
        body = json.loads(response.content or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        body = {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "unknown").lower().replace("_", " ")
        message = str(errors[0].get("message") or "")
        return f"{code}: {message}" if message else code
    if isinstance(body, dict) and isinstance(body.get("details"), str):
        return str(body["details"])
    return f"{response.status_code} {response.reason_phrase}".strip()


def describe(method: str, url: str, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f'{method.capitalize()} "{url}": {text}'


@dataclass
class Authorizer:
    """How one session authorizes: nothing, Basic, or Bearer tokens from a realm."""

    challenge: Challenge | None
    auth: AuthConfig
    scopes: tuple[str, ...]
    header: str | None = None


@dataclass
class RegistryClient:
    hosts: RegistryHosts
    retries: int = 3
    backoff: float = 0.25
    timeout: float = 60.0
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    _working: dict[str, str] = field(default_factory=dict)  # host -> base_url that answered
    _tokens: dict[tuple[str, ...], Token] = field(default_factory=dict)

    def http(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = f"{endpoint.base_url}|{id(endpoint.tls)}"
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                verify=endpoint.tls if endpoint.tls is not None else False,
                timeout=httpx.Timeout(self.timeout, connect=15.0),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )
            self._clients[key] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def session(
        self,
        host: str,
        repository: str,
        actions: tuple[str, ...],
        auth: AuthConfig,
        extra_scopes: tuple[str, ...] = (),
    ) -> Session:
        """A session on ``repository`` of ``host`` allowed ``actions`` (pull, push)."""
        endpoint, challenge = await self.ping(host)
        scopes = (scope_for(repository, actions), *extra_scopes)
        session = Session(self, endpoint, repository, Authorizer(challenge, auth, scopes))
        await session.authorize()
        return session

    async def ping(self, host: str) -> tuple[Endpoint, Challenge | None]:
        """``GET /v2/`` on the host's endpoints; the first that answers and its challenge."""
        # Deciding whether the host is insecure may resolve its name: not on the event loop.
        endpoints = await asyncio.to_thread(self.hosts.endpoints, host)
        remembered = self._working.get(host)
        if remembered is not None:
            endpoints.sort(key=lambda e: e.base_url != remembered)
        failures: list[str] = []
        for endpoint in endpoints:
            url = f"{endpoint.base_url}/v2/"
            try:
                response = await self._send_with_retry(
                    self.http(endpoint), "GET", url, {}, None,
                    retry_transport=len(endpoints) == 1 or endpoint.scheme == "http",
                )
            except httpx.TransportError as exc:
                failures.append(describe("GET", url, exc))
                continue
            if response.status_code in (200, 401):
                self._working[host] = endpoint.base_url
                return endpoint, _challenge_of(response)
            if endpoint.scheme == "https" and response.status_code == 400 and len(endpoints) > 1:
                # A plain-HTTP server answering a TLS client hello ("400 Bad Request").
                failures.append(f'Get "{url}": http: server gave HTTP response to HTTPS client')
                continue
            failures.append(f'Get "{url}": {registry_error_text(response)}')
        raise errdefs.Unavailable("; ".join(failures) or f"registry {host} cannot be reached")

    async def _send_with_retry(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        *,
        retry_transport: bool = True,
        params: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        stream: bool = False,
    ) -> httpx.Response:
        attempt = 0
        while True:
            request = http.build_request(
                method, url, headers=dict(headers), content=content, params=params
            )
            try:
                response = await http.send(
                    request, stream=stream, follow_redirects=follow_redirects
                )
            except httpx.TransportError as exc:
                if not retry_transport or attempt >= self.retries or _is_tls_failure(exc):
                    raise
                log.debug("retrying %s %s after %r", method, url, exc)
            else:
                if response.status_code not in TRANSIENT_STATUS or attempt >= self.retries:
                    return response
                await response.aclose()
                log.debug("retrying %s %s after status %s", method, url, response.status_code)
            await asyncio.sleep(self.backoff * (2**attempt) * (0.8 + 0.4 * random.random()))
            attempt += 1

    async def token(self, authorizer: Authorizer, endpoint: Endpoint) -> Token:
        challenge = authorizer.challenge
        assert challenge is not None
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        auth = authorizer.auth
        key = (realm, service, auth.username, auth.identity_token, *authorizer.scopes)
        cached = self._tokens.get(key)
        if cached is not None and cached.fresh():
            return cached
        if not realm.startswith(("http://", "https://")):
            raise errdefs.Unavailable(f"registry {endpoint.host} sent a bearer challenge "
                                      f"without a usable realm: {realm!r}")
        realm_url = httpx.URL(realm)
        realm_host = realm_url.netloc.decode()
        tls = None
        if realm_url.scheme == "https":
            verify = not self.hosts.is_insecure(realm_host) or self.hosts.has_ca(realm_host)
            tls = self.hosts.tls_context(realm_host, verify=verify)
        http = self.http(Endpoint(realm_host, f"{realm_url.scheme}://{realm_host}", tls))
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", scope) for scope in authorizer.scopes)
        try:
            if auth.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": auth.identity_token,
                        "client_id": "sampan", "service": service,
                        "scope": " ".join(authorizer.scopes)}
                response = await http.post(realm, data=form)
            else:
                headers = {}
                if auth.has_password:
                    headers["Authorization"] = basic_header(auth)
                    params.append(("account", auth.username))
                response = await http.get(realm, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise errdefs.Unavailable(describe("GET", realm, exc)) from exc
        if response.status_code in (401, 403):
            raise errdefs.Forbidden(
                f'Get "{realm}": unauthorized: {registry_error_text(response)}'
            )
        if response.status_code != 200:
            raise errdefs.Unavailable(
                f'Get "{realm}": token server answered {registry_error_text(response)}'
            )
        token = token_from_response(response.content, realm)
        self._tokens[key] = token
        return token


def _challenge_of(response: httpx.Response) -> Challenge | None:
    if response.status_code != 401:
        return None
    challenges = parse_challenges(response.headers.get_list("www-authenticate"))
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


def _is_tls_failure(exc: httpx.TransportError) -> bool:
    text = str(exc).lower()
    return "ssl" in text or "certificate" in text or "wrong version number" in text


class Session:
    """Requests on one repository through one endpoint, authorized."""

    def __init__(
        self, client: RegistryClient, endpoint: Endpoint, repository: str,
        authorizer: Authorizer,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.repository = repository
        self._authorizer = authorizer
        self.http = client.http(endpoint)

    @property
    def base(self) -> str:
        return f"{self.endpoint.base_url}/v2/{self.repository}"

    async def authorize(self) -> None:
        authorizer = self._authorizer
        challenge = authorizer.challenge
        if challenge is None:
            authorizer.header = None
        elif challenge.scheme == "bearer":
            if authorizer.auth.registry_token:
                authorizer.header = f"Bearer {authorizer.auth.registry_token}"
            else:
                token = await self.client.token(authorizer, self.endpoint)
                authorizer.header = f"Bearer {token.value}"
        elif challenge.scheme == "basic":
            authorizer.header = (
                basic_header(authorizer.auth) if authorizer.auth.has_password else None
            )
        else:
            raise errdefs.NotImplementedFeature(
                f"registry {self.endpoint.host} wants unsupported authentication "
                f"{challenge.scheme!r}"
            )

    def url(self, path: str) -> str:
        """``path`` is relative to ``/v2/<repository>`` or an absolute URL (a Location)."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return f"{self.endpoint.base_url}{path}"
        return f"{self.base}/{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
        body: Any = None,
    ) -> httpx.Response:
        """Send; 401 means missing or expired credentials (one new token is tried).

        ``body`` (an async iterable of bytes) is sent chunked and never retried.
        """
        url = self.url(path)
        all_headers = dict(headers or {})
        for attempt in range(2):
            authorization = self._authorizer.header
            challenge = self._authorizer.challenge
            if authorization is None and challenge is not None and challenge.scheme == "basic":
                raise errdefs.Forbidden(
                    describe(method, url, Exception("no basic auth credentials"))
                )
            if authorization is not None:
                all_headers["Authorization"] = authorization
            try:
                if body is not None:
                    request = self.http.build_request(
                        method, url, headers=all_headers, content=body, params=params
                    )
                    response = await self.http.send(request, stream=stream)
                else:
                    response = await self.client._send_with_retry(
                        self.http, method, url, all_headers, content, params=params,
                        follow_redirects=follow_redirects, stream=stream,
                        retry_transport=retry,
                    )
            except httpx.TransportError as exc:
                raise errdefs.Unavailable(describe(method, url, exc)) from exc
            if response.status_code != 401 or attempt == 1 or body is not None:
                return response
            challenge = _challenge_of(response)
            await response.aclose()
            if challenge is None:
                return response
            self._authorizer.challenge = challenge
            self.client._tokens.clear()
            await self.authorize()
        raise AssertionError("unreachable")

    async def check(self, response: httpx.Response, what: str, *ok: int) -> httpx.Response:
        """Raise the registry's error for a response whose status is not in ``ok``."""
        if response.status_code in ok:
            return response
        if not response.is_stream_consumed:
            await response.aread()
        text = registry_error_text(response)
        await response.aclose()
        status = response.status_code
        if status == 404:
            raise errdefs.NotFound(f"{what}: {text}")
        if status in (401, 403):
            raise errdefs.Forbidden(f"{what}: {text}")
        if status in (400, 405, 413, 416):
            raise errdefs.InvalidParameter(f"{what}: {text}")
        raise errdefs.Unavailable(f"{what}: {text}")
