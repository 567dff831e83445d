"""The CNI driver: runs standard CNI plugins (the CNI specification, "Execution of Network
Configurations") for networks with driver ``cni``.

A network's configuration list (conflist) is read from a file or given inline. ADD runs the
plugins in order, each one getting the previous one's result as ``prevResult``; DEL runs
them in reverse order with the cached ADD result; CHECK runs them in order with it. The
plugin program is looked up by its ``type`` in ``CNI_PATH``; parameters travel in the
``CNI_*`` environment variables and the configuration on stdin; a result or a
``{code, msg, details}`` error comes back on stdout.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sampan import errdefs

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")


@dataclass(frozen=True)
class CniCall:
    """One plugin invocation (what a fake executor records)."""

    program: str
    env: dict[str, str]
    stdin: bytes


class PluginExecutor(Protocol):
    def __call__(self, call: CniCall) -> tuple[int, bytes]: ...


def exec_plugin(call: CniCall) -> tuple[int, bytes]:
    done = subprocess.run([call.program], input=call.stdin, env=call.env, capture_output=True,
                          check=False, timeout=60)
    return done.returncode, done.stdout


def load_conflist(*, path: str = "", inline: str = "") -> dict[str, Any]:
    """A conflist from a file or a JSON string; a single plugin config (``.conf``) is
    wrapped into a list of one. ``InvalidParameter`` when it is malformed."""
    try:
        if inline:
            data = json.loads(inline)
        else:
            with open(path) as handle:
                data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise errdefs.InvalidParameter(f"cannot read CNI configuration: {exc}") from exc
    if not isinstance(data, dict):
        raise errdefs.InvalidParameter("CNI configuration must be a JSON object")
    if "plugins" not in data:
        if "type" not in data:
            raise errdefs.InvalidParameter("CNI configuration has neither plugins nor type")
        data = {"cniVersion": data.get("cniVersion", "1.0.0"), "name": data.get("name", ""),
                "plugins": [data]}
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in plugins):
        raise errdefs.InvalidParameter("CNI configuration: plugins must be a list of objects "
                                       "with a type")
    if not data.get("name"):
        raise errdefs.InvalidParameter("CNI configuration has no name")
    return data


@dataclass(frozen=True)
class CniAddress:
    address: str  # "10.22.0.5"
    prefixlen: int
    gateway: str


def result_addresses(result: Mapping[str, Any]) -> list[CniAddress]:
    """The IPv4 addresses of a CNI result (spec versions 0.3.x to 1.x share ``ips``)."""
    found = []
    for entry in result.get("ips") or []:
        interface = ipaddress.ip_interface(str(entry.get("address")))
        if interface.version == 4:
            found.append(CniAddress(str(interface.ip), interface.network.prefixlen,
                                    str(entry.get("gateway") or "")))
    return found


class CniRunner:
    def __init__(self, conflist: Mapping[str, Any], *,
                 cni_path: Sequence[str] = DEFAULT_CNI_PATH,
                 execute: PluginExecutor = exec_plugin) -> None:
        self.conflist = dict(conflist)
        self._path = list(cni_path)
        self._execute = execute

    def _program(self, plugin_type: str) -> str:
        for directory in self._path:
            candidate = os.path.join(directory, plugin_type)
            if os.access(candidate, os.X_OK):
                return candidate
        raise errdefs.NotFound(
            f"failed to find CNI plugin {plugin_type!r} in path {':'.join(self._path)}")

    def _config(self, plugin: Mapping[str, Any], prev: Mapping[str, Any] | None,
                runtime_config: Mapping[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(dict(plugin))
        config["name"] = self.conflist["name"]
        config["cniVersion"] = self.conflist.get("cniVersion", "1.0.0")
        if prev is not None:
            config["prevResult"] = dict(prev)
        capabilities = plugin.get("capabilities") or {}
        wanted = {k: v for k, v in runtime_config.items() if capabilities.get(k)}
        if wanted:
            config["runtimeConfig"] = wanted
        return config

    def _invoke(self, command: str, plugin: Mapping[str, Any], container_id: str,
                netns: str, ifname: str, prev: Mapping[str, Any] | None,
                runtime_config: Mapping[str, Any]) -> dict[str, Any]:
        env = {
            "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_ARGS": "", "CNI_PATH": ":".join(self._path),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        stdin = json.dumps(self._config(plugin, prev, runtime_config)).encode()
        code, out = self._execute(CniCall(self._program(str(plugin["type"])), env, stdin))
        try:
            reply = json.loads(out) if out.strip() else {}
        except ValueError:
            reply = {"msg": out.decode(errors="replace").strip()}
        if code != 0:
            message = reply.get("msg") or f"exit status {code}"
            details = reply.get("details")
            raise errdefs.System(
                f"CNI plugin {plugin['type']} {command} failed: {message}"
                + (f" ({details})" if details else ""))
        return reply if isinstance(reply, dict) else {}

    def add(self, container_id: str, netns: str, ifname: str,
            runtime_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """ADD through the chain; the last plugin's result. A failure runs DEL (the spec
        asks runtimes to clean up after a failed ADD) and raises."""
        result: dict[str, Any] | None = None
        try:
            for plugin in self.conflist["plugins"]:
                result = self._invoke("ADD", plugin, container_id, netns, ifname, result,
                                      runtime_config or {})
        except errdefs.SampanError:
            try:
                self.delete(container_id, netns, ifname, result, runtime_config)
            except errdefs.SampanError:
                pass
            raise
        return result or {}

    def check(self, container_id: str, netns: str, ifname: str,
              previous: Mapping[str, Any], runtime_config: Mapping[str, Any] | None = None
              ) -> None:
        for plugin in self.conflist["plugins"]:
            self._invoke("CHECK", plugin, container_id, netns, ifname, previous,
                         runtime_config or {})

    def delete(self, container_id: str, netns: str, ifname: str,
               previous: Mapping[str, Any] | None,
               runtime_config: Mapping[str, Any] | None = None) -> None:
        """DEL in reverse order; every plugin runs even when one fails (the first error is
        raised at the end), as DEL must release what it can."""
        first: errdefs.SampanError | None = None
        for plugin in reversed(self.conflist["plugins"]):
            try:
                self._invoke("DEL", plugin, container_id, netns, ifname, previous,
                             runtime_config or {})
            except errdefs.SampanError as exc:
                first = first or exc
        if first is not None:
            raise first
