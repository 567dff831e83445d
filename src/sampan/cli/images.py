"""Image references as the docker CLI splits them, and pulling with progress."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from sampan.cli.context import Context


def split_reference(reference: str) -> tuple[str, str]:
    """``busybox`` -> (``busybox``, ``latest``); ``r:5000/a:1`` -> (``r:5000/a``, ``1``);
    ``a@sha256:..`` -> (``a``, ``sha256:..``)."""
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, digest
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def registry_of(name: str) -> str:
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_header(ctx: Context, registry: str) -> dict[str, str]:
    """``X-Registry-Auth`` from ``<config>/config.json`` written by ``sampan login``."""
    try:
        with open(os.path.join(ctx.config_dir, "config.json")) as handle:
            config: dict[str, Any] = json.load(handle)
    except (OSError, ValueError):
        return {}
    keys = [registry]
    if registry == "docker.io":
        keys.append("https://index.docker.io/v1/")
    for key in keys:
        entry = (config.get("auths") or {}).get(key)
        if entry and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            payload = {"username": user, "password": password, "serveraddress": key}
            encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
            return {"X-Registry-Auth": encoded}
    return {}


def pull(ctx: Context, reference: str, platform: str = "", quiet: bool = False,
         all_tags: bool = False) -> None:
    from sampan.cli.progress import display

    name, tag = split_reference(reference)
    params = {"fromImage": name, "tag": None if all_tags else tag,
              "platform": platform or None}
    messages = ctx.client.json_stream("POST", "/images/create", params,
                                      headers=auth_header(ctx, registry_of(name)))
    if quiet:
        import io

        display(messages, out=io.StringIO(), tty=False)
    else:
        display(messages, out=ctx.stdout)
