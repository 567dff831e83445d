"""Read a bundle's config.json and check it section by section.

Each problem is reported as ``errdefs.InvalidParameter`` naming the section and field
(``config.json: mounts[2].destination must be an absolute path``), before any process is forked.
"""


from __future__ import annotations

import json
import os

from sampan import errdefs
from sampan.kernel.namespaces import NAMESPACES
from sampan.runtime.hooks import HOOK_KINDS
from sampan.runtime.mountopts import propagation_flag
from sampan.runtime.userproc import RLIMITS

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_FILE = "config.json"


def _fail(message: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"config.json: {message}")


def load_bundle(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, CONFIG_FILE)
    try:
        with open(path) as src:
            config = json.load(src)
    except FileNotFoundError:
        raise errdefs.NotFound(f"no config.json in bundle {bundle}") from None
    except ValueError as exc:
        raise _fail(f"not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise _fail("the top level must be an object")
    return config


def lsm_enabled(name: str) -> bool:
    if name == "apparmor":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as flag:
                return flag.read().strip() == "Y"
        except OSError:
            return False
    return os.path.exists("/sys/fs/selinux/enforce")


def validate_process(process: Any, where: str = "process") -> None:
    if not isinstance(process, dict):
        raise _fail(f"{where} must be an object")
    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise _fail(f"{where}.args must be a non-empty list of strings")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise _fail(f"{where}.cwd must be an absolute path, got {cwd!r}")
    for entry in process.get("env") or []:
        if not isinstance(entry, str) or "=" not in entry:
            raise _fail(f"{where}.env entry {entry!r} is not KEY=VALUE")
    user = process.get("user") or {}
    for field in ("uid", "gid"):
        if not isinstance(user.get(field, 0), int) or user.get(field, 0) < 0:
            raise _fail(f"{where}.user.{field} must be a non-negative integer")
    for limit in process.get("rlimits") or []:
        if limit.get("type") not in RLIMITS:
            raise _fail(f"{where}.rlimits: unknown rlimit type {limit.get('type')!r}")
        if int(limit.get("soft", 0)) > int(limit.get("hard", 0)):
            raise _fail(f"{where}.rlimits: {limit['type']} soft limit exceeds hard limit")
    if process.get("apparmorProfile") and not lsm_enabled("apparmor"):
        raise _fail(f"{where}.apparmorProfile {process['apparmorProfile']!r} requested but "
                    "AppArmor is not enabled on this host")
    if process.get("selinuxLabel") and not lsm_enabled("selinux"):
        raise _fail(f"{where}.selinuxLabel {process['selinuxLabel']!r} requested but "
                    "SELinux is not enabled on this host")
    from sampan.runtime.capabilities import parse_capabilities

    try:
        parse_capabilities(process.get("capabilities"))
    except errdefs.InvalidParameter as exc:
        raise _fail(f"{where}.capabilities: {exc}") from None


def validate(config: dict[str, Any], bundle: str) -> None:
    if "ociVersion" not in config:
        raise _fail("ociVersion is missing")
    validate_process(config.get("process"))
    root = config.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        raise _fail("root.path is missing")
    rootfs = root_path(config, bundle)
    if not os.path.isdir(rootfs):
        raise _fail(f"root.path {rootfs} is not a directory")
    for index, mount in enumerate(config.get("mounts") or []):
        destination = mount.get("destination")
        if not isinstance(destination, str) or not destination.startswith("/"):
            raise _fail(f"mounts[{index}].destination must be an absolute path, "
                        f"got {destination!r}")
        if not isinstance(mount.get("options", []), list):
            raise _fail(f"mounts[{index}].options must be a list")
    linux = config.get("linux") or {}
    seen: set[str] = set()
    for index, namespace in enumerate(linux.get("namespaces") or []):
        kind = namespace.get("type")
        if kind not in NAMESPACES:
            raise _fail(f"linux.namespaces[{index}]: unknown namespace type {kind!r}")
        if kind in seen:
            raise _fail(f"linux.namespaces: duplicate namespace {kind!r}")
        seen.add(kind)
        path = namespace.get("path")
        if path and not os.path.exists(path):
            raise _fail(f"linux.namespaces[{index}]: {kind} namespace path {path} does not exist")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise _fail("linux.uidMappings need a user namespace")
    if "mount" not in seen:
        raise _fail("linux.namespaces must include a mount namespace")
    for index, device in enumerate(linux.get("devices") or []):
        if device.get("type") not in ("c", "b", "u", "p"):
            raise _fail(f"linux.devices[{index}].type must be c, b, u or p")
        if not str(device.get("path", "")).startswith("/dev/"):
            raise _fail(f"linux.devices[{index}].path must be under /dev")
    propagation = linux.get("rootfsPropagation")
    if propagation:
        try:
            propagation_flag(propagation)
        except KeyError:
            raise _fail(f"linux.rootfsPropagation: unknown value {propagation!r}") from None
    for key in linux.get("sysctl") or {}:
        if not key or ".." in key or key.startswith(("/", ".")):
            raise _fail(f"linux.sysctl: invalid key {key!r}")
    hooks = config.get("hooks") or {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise _fail(f"hooks: unknown hook kind {kind!r}")
        for index, hook in enumerate(entries or []):
            if not str(hook.get("path", "")).startswith("/"):
                raise _fail(f"hooks.{kind}[{index}].path must be an absolute path")


def root_path(config: dict[str, Any], bundle: str) -> str:
    path: str = config["root"]["path"]
    return path if path.startswith("/") else os.path.normpath(os.path.join(bundle, path))
