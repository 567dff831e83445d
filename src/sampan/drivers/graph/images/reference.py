"""Image references, parsed and normalised the way Docker does.

Grammar (from the distribution reference spec)::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path-component [ "/" path-component ]*
    domain    := host [ ":" port ]           e.g. "localhost:5000", "registry.example.com"
    tag       := [\\w][\\w.-]{0,127}
    digest    := algorithm ":" hex           e.g. "sha256:" + 64 hex digits

Normalisation (Docker's ``ParseNormalizedNamed``): a first component without ``.`` or ``:``
that is not ``localhost`` is not a registry, so ``busybox`` means
``docker.io/library/busybox`` and ``me/app`` means ``docker.io/me/app``; ``index.docker.io``
is ``docker.io``. The "familiar" form drops ``docker.io/`` and ``library/`` again, which is
how Docker shows RepoTags (``busybox:latest``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sampan import errdefs

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_NAME_TOTAL_LENGTH_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository name as Docker shows it, e.g. ``busybox`` or ``me/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in self.path[8:]:
            return self.path[len(OFFICIAL_REPO_PREFIX) :]
        return self.path

    def __str__(self) -> str:
        return self._render(self.name)

    def familiar(self) -> str:
        """``busybox:latest``, ``localhost:5000/app@sha256:...``: Docker's display form."""
        return self._render(self.familiar_name)

    def _render(self, name: str) -> str:
        text = name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> Reference:
        """Add ``:latest`` to a reference that has neither tag nor digest."""
        if self.is_name_only:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def tagged_only(self) -> Reference:
        """The ``name:tag`` part (dropping a digest), used as a tag key."""
        return Reference(self.domain, self.path, self.tag, None)


def is_full_id(text: str) -> bool:
    """True for ``sha256:<64 hex>`` or a bare 64-hex image ID."""
    return bool(_SHA256_RE.fullmatch(text) or _HEX64_RE.fullmatch(text))


def full_id(text: str) -> str:
    """``sha256:<hex>`` for ``<hex>`` or ``sha256:<hex>``."""
    return text if text.startswith("sha256:") else f"sha256:{text}"


def is_id_prefix(text: str) -> bool:
    """True if ``text`` could be a (short) image ID: hex, optionally after ``sha256:``."""
    hex_part = text[len("sha256:") :] if text.startswith("sha256:") else text
    return 0 < len(hex_part) <= 64 and re.fullmatch(r"[0-9a-f]+", hex_part) is not None


def parse_normalized(text: str) -> Reference:
    """Parse ``text`` as Docker's ``ParseNormalizedNamed`` (no default tag added).

    Raises ``errdefs.InvalidParameter`` for malformed references, upper-case repository
    names and bare 64-hex strings (which Docker reserves for image IDs).
    """
    if _HEX64_RE.fullmatch(text):
        raise errdefs.InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    remainder = text
    digest: str | None = None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise errdefs.InvalidParameter(f"invalid reference format: {text!r}")
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise errdefs.InvalidParameter(f"invalid reference format: {text!r}")
    domain, path = _split_domain(remainder, text)
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise errdefs.InvalidParameter(
                f"invalid reference format: repository name ({path}) must be lowercase"
            )
        raise errdefs.InvalidParameter(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > _NAME_TOTAL_LENGTH_MAX:
        raise errdefs.InvalidParameter("repository name must not be more than 255 characters")
    return Reference(domain, path, tag, digest)


def _split_domain(name: str, original: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        if first.lower() != first and not sep:
            raise errdefs.InvalidParameter(
                f"invalid reference format: repository name ({name}) must be lowercase"
            )
        domain, path = DEFAULT_DOMAIN, name
    else:
        if not _DOMAIN_RE.fullmatch(first):
            raise errdefs.InvalidParameter(f"invalid reference format: {original!r}")
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse_tagged(text: str) -> Reference:
    """Parse and add ``:latest`` when there is neither tag nor digest (``TagNameOnly``)."""
    return parse_normalized(text).with_default_tag()


def familiar(full: str) -> str:
    """Familiar form of a stored full reference string."""
    return parse_normalized(full).familiar()


def match_pattern(pattern: str, ref: Reference) -> bool:
    """Docker's ``reference`` filter (``FamiliarMatch``): a ``path.Match`` glob tried on the
    familiar string (``busybox:latest``) and then on the familiar name (``busybox``)."""
    return _glob_match(pattern, ref.familiar()) or _glob_match(pattern, ref.familiar_name)


def _glob_match(pattern: str, text: str) -> bool:
    """``path.Match`` semantics: ``*`` and ``?`` never match ``/``; ``[...]`` classes."""
    regex = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            regex.append("[^/]*")
        elif char == "?":
            regex.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                return False
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "!" + body[1:]
            if body.startswith("!"):
                regex.append("[^/" + re.escape(body[1:]).replace("\\-", "-") + "]")
            else:
                regex.append("[" + re.escape(body).replace("\\-", "-") + "]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        else:
            regex.append(re.escape(char))
        i += 1
    return re.fullmatch("".join(regex), text) is not None
