"""Docker's default seccomp profile and Docker's profile format.

Docker's format is the OCI ``linux.seccomp`` object plus two things the engine resolves
before it writes config.json:

- ``archMap``: for the native architecture, the architectures the filter also covers
  (x86_64 also runs x86 and x32 binaries, so the filter must know their syscall numbers);
- per rule ``includes``/``excludes`` with ``caps`` (all of them must be / none may be in the
  container's capability set), ``arches`` (Go's architecture names: amd64, arm64, ...)
  and ``minKernel`` ("4.8": the host kernel must be at least that).

The default profile denies with EPERM what is not listed; it allows clone only without
namespace flags and answers clone3 with ENOSYS (its flags live in memory, where a filter
cannot see them, so the C library must fall back to clone) unless the container has
CAP_SYS_ADMIN, and it opens the syscalls a capability governs to containers holding it.
"""

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from sampan import errdefs

_DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "default.json")

# uname -m -> the Go architecture name Docker's profile uses in includes/excludes.
_GO_ARCH = {
    "x86_64": "amd64",
    "i386": "386",
    "i686": "386",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
}
# uname -m -> the OCI name of the native architecture, the key into archMap.
_NATIVE_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64",
    "i386": "SCMP_ARCH_X86",
    "i686": "SCMP_ARCH_X86",
    "aarch64": "SCMP_ARCH_AARCH64",
    "armv7l": "SCMP_ARCH_ARM",
    "armv6l": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64",
}

def load_docker_default() -> dict[str, Any]:
    """Docker's default profile in Docker's format (a fresh copy each call: parsing the
    file again is faster than copy.deepcopy)."""
    with open(_DEFAULT_PATH, encoding="utf-8") as file:
        profile: dict[str, Any] = json.load(file)
    return profile


def resolve_docker_profile(
    profile: Mapping[str, Any],
    capabilities: Iterable[str],
    *,
    machine: str | None = None,
    kernel_release: str | None = None,
) -> dict[str, Any]:
    """Turn a Docker-format profile into the OCI ``linux.seccomp`` for one container.

    ``capabilities`` are the container's (bounding) capability names; ``machine`` and
    ``kernel_release`` default to this host's ``uname``.
    """
    uname = os.uname()
    machine = uname.machine if machine is None else machine
    kernel = _kernel_version(uname.release if kernel_release is None else kernel_release)
    go_arch = _GO_ARCH.get(machine, machine)
    caps = set(capabilities)

    resolved: dict[str, Any] = {
        key: _copy_json(value)
        for key, value in profile.items()
        if key not in ("archMap", "syscalls", "comment")
    }
    native = _NATIVE_ARCH.get(machine)
    arch_map = profile.get("archMap") or []
    if native is not None and arch_map:
        architectures: list[str] = []
        for entry in arch_map:
            if entry.get("architecture") == native:
                architectures.append(native)
                architectures.extend(entry.get("subArchitectures") or [])
        resolved["architectures"] = architectures
    syscalls = []
    for i, entry in enumerate(profile.get("syscalls") or []):
        where = f"seccomp syscalls[{i}]"
        if not _applies(entry, caps, go_arch, kernel, where):
            continue
        syscalls.append(
            {
                key: _copy_json(value)
                for key, value in entry.items()
                if key not in ("includes", "excludes", "comment")
            }
        )
    resolved["syscalls"] = syscalls
    return resolved


def _applies(
    entry: Mapping[str, Any], caps: set[str], arch: str, kernel: tuple[int, ...], where: str
) -> bool:
    includes = entry.get("includes") or {}
    excludes = entry.get("excludes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("minKernel"):
        minimum = _kernel_version(includes["minKernel"], f"{where}.includes.minKernel")
        if kernel < minimum:
            return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    return not (excludes.get("caps") and set(excludes["caps"]) & caps)


def _copy_json(value: Any) -> Any:
    """A copy of a JSON tree (dicts, lists, scalars), several times faster than deepcopy."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def _kernel_version(release: str, where: str = "kernel release") -> tuple[int, ...]:
    """ "6.18.44-fc-v669" -> (6, 18, 44)."""
    numbers: list[int] = []
    for part in release.split("-", 1)[0].split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
    if not numbers:
        raise errdefs.InvalidParameter(f"{where}: {release!r} is not a kernel version")
    return tuple(numbers)
