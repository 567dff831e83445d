"""``docker commit --change`` / ``docker import --change``: Dockerfile instructions applied
to an image's runtime config.

Allowed (as in Docker): CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK (NONE or CMD form),
LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. Each change is one instruction line in
Dockerfile syntax: ``CMD ["sh"]`` (exec form, JSON) or ``CMD sh -c x`` (shell form, run by
``/bin/sh -c``); ``ENV A=1 B="two words"`` or the legacy ``ENV A 1``; ``EXPOSE 80 53/udp
8000-8001``; ``VOLUME ["/a"]`` or ``VOLUME /a /b``; a relative ``WORKDIR`` is joined to the
current one. ``$VAR`` and ``${VAR}`` in ENV, LABEL, WORKDIR, USER, VOLUME, EXPOSE and
STOPSIGNAL expand from the config's own environment, as the builder does.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterable
from typing import Any

from sampan import errdefs

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)

_EXPAND = re.compile(r"\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """A copy of the runtime ``config`` with each change line applied in order."""
    result = json.loads(json.dumps(config)) if config else {}
    for line in changes:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        keyword, _, rest = text.partition(" ")
        if not rest:
            keyword, _, rest = text.partition("\t")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword not in ALLOWED:
            raise errdefs.InvalidParameter(f"{keyword.lower()} is not a valid change command")
        if not rest:
            raise errdefs.InvalidParameter(f"{keyword} requires at least one argument")
        _APPLY[keyword](result, rest)
    return result


def _env_map(config: dict[str, Any]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for entry in config.get("Env") or []:
        key, _, value = str(entry).partition("=")
        mapping[key] = value
    return mapping


def _expand(config: dict[str, Any], text: str) -> str:
    env = _env_map(config)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        return env.get(match.group(1) or match.group(2), "")

    return _EXPAND.sub(replace, text)


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"cannot parse change {text!r}: {exc}") from exc


def _json_or_shell(keyword: str, text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return ["/bin/sh", "-c", text]


def _json_or_words(text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return text.split()


def _cmd(config: dict[str, Any], text: str) -> None:
    config["Cmd"] = _json_or_shell("CMD", text)


def _entrypoint(config: dict[str, Any], text: str) -> None:
    config["Entrypoint"] = _json_or_shell("ENTRYPOINT", text)


def _pairs(keyword: str, text: str) -> list[tuple[str, str]]:
    words = _words(text)
    if "=" not in words[0]:
        # Legacy form: ``ENV KEY value with spaces``.
        key, _, value = text.partition(" ")
        if not value.strip() and keyword == "ENV":
            raise errdefs.InvalidParameter(f"{keyword} must have two arguments")
        return [(key, " ".join(_words(value)) if value.strip() else "")]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise errdefs.InvalidParameter(f"{keyword} names can not be blank: {word!r}")
        pairs.append((key, value))
    return pairs


def _env(config: dict[str, Any], text: str) -> None:
    for key, value in _pairs("ENV", text):
        value = _expand(config, value)
        env = [e for e in (config.get("Env") or []) if str(e).partition("=")[0] != key]
        env.append(f"{key}={value}")
        config["Env"] = env


def _label(config: dict[str, Any], text: str) -> None:
    labels = dict(config.get("Labels") or {})
    for key, value in _pairs("LABEL", text):
        labels[_expand(config, key)] = _expand(config, value)
    config["Labels"] = labels


_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?")


def _expose(config: dict[str, Any], text: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for word in _expand(config, text).split():
        match = _PORT.fullmatch(word.lower())
        if match is None:
            raise errdefs.InvalidParameter(f"invalid containerPort: {word}")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        proto = match.group(3) or "tcp"
        if not 0 < first <= last <= 65535:
            raise errdefs.InvalidParameter(f"invalid port range: {word}")
        for port in range(first, last + 1):
            ports[f"{port}/{proto}"] = {}
    config["ExposedPorts"] = ports


def _workdir(config: dict[str, Any], text: str) -> None:
    path = _expand(config, text)
    if not path.startswith("/"):
        path = posixpath.join(config.get("WorkingDir") or "/", path)
    config["WorkingDir"] = posixpath.normpath(path) if path != "/" else "/"


def _user(config: dict[str, Any], text: str) -> None:
    config["User"] = _expand(config, text)


def _volume(config: dict[str, Any], text: str) -> None:
    volumes = dict(config.get("Volumes") or {})
    for path in _json_or_words(_expand(config, text)):
        if not path.strip():
            raise errdefs.InvalidParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = volumes


def _stopsignal(config: dict[str, Any], text: str) -> None:
    config["StopSignal"] = _expand(config, text)


def _onbuild(config: dict[str, Any], text: str) -> None:
    keyword = text.split(None, 1)[0].upper()
    if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise errdefs.InvalidParameter(f"{keyword} isn't allowed as an ONBUILD trigger")
    config["OnBuild"] = [*(config.get("OnBuild") or []), text]


def _healthcheck(config: dict[str, Any], text: str) -> None:
    if text.upper() == "NONE":
        config["Healthcheck"] = {"Test": ["NONE"]}
        return
    keyword, _, rest = text.partition(" ")
    if keyword.upper() != "CMD" or not rest.strip():
        raise errdefs.InvalidParameter("HEALTHCHECK must be NONE or CMD <command>")
    command = _json_or_shell("HEALTHCHECK", rest.strip())
    if command[:2] == ["/bin/sh", "-c"]:
        config["Healthcheck"] = {"Test": ["CMD-SHELL", command[2]]}
    else:
        config["Healthcheck"] = {"Test": ["CMD", *command]}


_APPLY = {
    "CMD": _cmd,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "HEALTHCHECK": _healthcheck,
    "LABEL": _label,
    "ONBUILD": _onbuild,
    "STOPSIGNAL": _stopsignal,
    "USER": _user,
    "VOLUME": _volume,
    "WORKDIR": _workdir,
}
