"""Seccomp for the OCI runtime: compile a ``linux.seccomp`` profile to a BPF program.

Compilation happens once, in the runtime's parent process, with libseccomp; the program is
cached on disk under the profile's digest. The container's init loads the bytes with a raw
seccomp(2) (:func:`sampan.kernel.seccomp.load_filter`) and needs no library::

    runtime parent                                  container init
    compile_profile(spec["linux"]["seccomp"],
                    "<root>/seccomp-cache")
      cache hit: read <digest>.bpf
      miss: plan -> libseccomp -> export -> write
    CompiledFilter(program, flags) ---(fork)------> load_filter(program, flags)
                                                    execve

What is not supported: SCMP_ACT_NOTIFY and ``listenerPath`` (NotImplementedFeature), and
runc's extra "return ENOSYS for syscalls newer than the profile" stub.
"""


from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

# typing, dataclasses and the profile planner are kept off the cache-hit path: every container
# start with a profile (all of Docker's) goes through compile_profile
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from sampan.runtime.seccomp.profile import FilterPlan

    class CompiledFilter(NamedTuple):
        program: bytes  # an array of struct sock_filter, ready for seccomp(2)
        flags: int  # SECCOMP_FILTER_FLAG_* for seccomp(2)
else:
    CompiledFilter = collections.namedtuple("CompiledFilter", "program flags")

# linux.seccomp.flags -> SECCOMP_FILTER_FLAG_* (include/uapi/linux/seccomp.h)
_FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}


def _cached_flags(profile: Mapping[str, Any]) -> int | None:
    """The flags of a profile already compiled (so already validated), or None if odd."""
    flags = 0
    for name in profile.get("flags") or []:
        if name not in _FILTER_FLAGS:
            return None
        flags |= _FILTER_FLAGS[name]
    return flags


def compile_profile(profile: Mapping[str, Any], cache_dir: str | None) -> CompiledFilter:
    """Check ``profile`` (OCI ``linux.seccomp``) and return its BPF program and flags.

    With ``cache_dir`` the program is read from, or on a miss written to, that directory.
    Raises ``errdefs.InvalidParameter`` naming the bad field, ``errdefs.NotImplementedFeature``
    for user notification, ``errdefs.Unavailable`` when libseccomp is missing on a miss.
    Syscall names libseccomp does not know are skipped, as runc skips them.
    """
    if cache_dir is None:
        plan = _plan(profile)
        return CompiledFilter(_compile(plan), plan.flags)

    from sampan.runtime.seccomp.cache import ProgramCache, profile_digest

    cache = ProgramCache(cache_dir)
    digest = profile_digest(profile)
    program = cache.read(digest)
    flags = _cached_flags(profile)
    if program is not None and flags is not None:
        # a hit is a profile this code planned and compiled before: no need to check it again
        return CompiledFilter(program, flags)
    plan = _plan(profile)
    program = _compile(plan)
    cache.write(digest, program)
    return CompiledFilter(program, plan.flags)


def _plan(profile: Mapping[str, Any]) -> FilterPlan:
    from sampan.runtime.seccomp.profile import plan_filter

    return plan_filter(profile)


def default_profile(
    capabilities: Iterable[str] | None = None,
    *,
    machine: str | None = None,
    kernel_release: str | None = None,
) -> dict[str, Any]:
    """Docker's default profile resolved to an OCI ``linux.seccomp`` for a container with
    ``capabilities`` (default: Docker's 14 default capabilities) on this host."""
    from sampan.runtime.capabilities import DEFAULT_CAPABILITIES
    from sampan.runtime.seccomp.docker_profile import load_docker_default, resolve_docker_profile

    return resolve_docker_profile(
        load_docker_default(),
        DEFAULT_CAPABILITIES if capabilities is None else capabilities,
        machine=machine,
        kernel_release=kernel_release,
    )


def docker_default_profile() -> dict[str, Any]:
    """Docker's default profile in Docker's own format (archMap, includes/excludes)."""
    from sampan.runtime.seccomp.docker_profile import load_docker_default

    return load_docker_default()


def resolve_docker_profile(
    profile: Mapping[str, Any],
    capabilities: Iterable[str],
    *,
    machine: str | None = None,
    kernel_release: str | None = None,
) -> dict[str, Any]:
    """A Docker-format profile (e.g. ``--security-opt seccomp=file.json``) resolved to an
    OCI ``linux.seccomp`` for a container with ``capabilities``."""
    from sampan.runtime.seccomp import docker_profile

    return docker_profile.resolve_docker_profile(
        profile, capabilities, machine=machine, kernel_release=kernel_release
    )


def _compile(plan: FilterPlan) -> bytes:
    from sampan.runtime.seccomp.libseccomp import compile_plan

    return compile_plan(plan).program


__all__ = [
    "CompiledFilter",
    "compile_profile",
    "default_profile",
    "docker_default_profile",
    "resolve_docker_profile",
]
