"""The OCI ``process.capabilities`` sets: parse them, then bring the process to them.

The container's init applies them in this order (runc does the same):

    drop_bounding(caps)            # needs CAP_SETPCAP, so while still fully privileged
    set_keepcaps(True)             # so that setuid() away from 0 keeps the permitted set
    setgroups / setgid / setuid
    set_keepcaps(False)
    apply_capabilities(caps)       # capset(effective, permitted, inheritable), then ambient
    (no_new_privs) -> seccomp -> execve

Ambient capabilities are what make capabilities survive execve for a non-root user: after
execve the permitted and effective sets of a program without file capabilities are the
ambient set (capabilities(7), "Transformation of capabilities during execve()").

A capability the process does not have itself cannot be granted. This host, for one, lacks
CAP_SYS_RESOURCE in its bounding set, and ``docker run --privileged`` asks for every
capability. Such requests are skipped rather than refused, and their names are returned so
the caller can warn.
"""


from __future__ import annotations

import collections
import errno
from collections.abc import Iterable, Mapping

from sampan import errdefs
from sampan.kernel import capabilities as _kernel

ALL_CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

CAPABILITY_NAMES: dict[int, str] = {number: name for name, number in ALL_CAPABILITIES.items()}

# The 14 capabilities Docker gives a container by default (no --cap-add, not --privileged).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

_SET_NAMES = ("bounding", "effective", "inheritable", "permitted", "ambient")


# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Protocol

    class CapabilitySets(NamedTuple):
        """The five sets, as capability numbers."""

        bounding: frozenset[int] = frozenset()
        effective: frozenset[int] = frozenset()
        inheritable: frozenset[int] = frozenset()
        permitted: frozenset[int] = frozenset()
        ambient: frozenset[int] = frozenset()
else:
    Protocol = object
    CapabilitySets = collections.namedtuple(
        "CapabilitySets", _SET_NAMES, defaults=(frozenset(),) * len(_SET_NAMES))


class CapabilityKernel(Protocol):
    """The kernel calls this module makes (``sampan.kernel.capabilities`` satisfies it)."""

    def capget(self, pid: int = 0) -> tuple[int, int, int]: ...
    def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...
    def bounding_has(self, cap: int) -> bool: ...
    def bounding_drop(self, cap: int) -> None: ...
    def ambient_raise(self, cap: int) -> None: ...
    def ambient_clear_all(self) -> None: ...


class _RealKernel:
    capget = staticmethod(_kernel.capget)
    capset = staticmethod(_kernel.capset)
    bounding_has = staticmethod(_kernel.bounding_has)
    bounding_drop = staticmethod(_kernel.bounding_drop)
    ambient_raise = staticmethod(_kernel.ambient_raise)
    ambient_clear_all = staticmethod(_kernel.ambient_clear_all)


REAL_KERNEL: CapabilityKernel = _RealKernel()


def host_last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    """The highest capability number this kernel knows."""
    with open(path, encoding="ascii") as file:
        return int(file.read())


def parse_capabilities(spec: Mapping[str, Any] | None) -> CapabilitySets:
    """Parse OCI ``process.capabilities``. A missing object or set means an empty set (runc
    drops every capability then)."""
    if spec is None:
        return CapabilitySets()
    if not isinstance(spec, Mapping):
        raise errdefs.InvalidParameter("process.capabilities must be an object")
    sets: dict[str, frozenset[int]] = {}
    for set_name in _SET_NAMES:
        names = spec.get(set_name)
        if names is None:
            sets[set_name] = frozenset()
            continue
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise errdefs.InvalidParameter(
                f"process.capabilities.{set_name} must be a list of capability names"
            )
        sets[set_name] = frozenset(_capability_number(name) for name in names)
    return CapabilitySets(**sets)


def capability_names(numbers: Iterable[int]) -> list[str]:
    """Names of ``numbers``, sorted by number (unknown numbers as ``CAP_<n>``)."""
    return [CAPABILITY_NAMES.get(number, f"CAP_{number}") for number in sorted(numbers)]


def mask_of(numbers: Iterable[int]) -> int:
    mask = 0
    for number in numbers:
        mask |= 1 << number
    return mask


def numbers_of(mask: int) -> frozenset[int]:
    return frozenset(bit for bit in range(mask.bit_length()) if mask >> bit & 1)


def drop_bounding(
    caps: CapabilitySets, *, kernel: CapabilityKernel = REAL_KERNEL, last_cap: int | None = None
) -> list[str]:
    """Drop from the bounding set every capability not in ``caps.bounding``.

    Only capabilities the process still has are dropped (PR_CAPBSET_READ first). Returns the
    names of requested capabilities that are not in the process's own bounding set and so
    were skipped.
    """
    top = host_last_cap() if last_cap is None else last_cap
    present = {cap for cap in range(top + 1) if kernel.bounding_has(cap)}
    for cap in sorted(present - caps.bounding):
        kernel.bounding_drop(cap)
    return capability_names(caps.bounding - present)


def apply_capabilities(
    caps: CapabilitySets, *, kernel: CapabilityKernel = REAL_KERNEL
) -> list[str]:
    """Set effective, permitted and inheritable with one capset(2), then raise the ambient set.

    Requests the kernel would refuse are left out instead (see the module docstring): the new
    permitted and effective sets keep only what is permitted now; the inheritable set only
    what is inheritable now or in the bounding set (and, without CAP_SETPCAP in the effective
    set, also inheritable or permitted now); the ambient set only what ends up both
    permitted and inheritable. Returns the names left out, once each.
    """
    effective_now, permitted_now, inheritable_now = kernel.capget(0)
    have_permitted = numbers_of(permitted_now)
    have_inheritable = numbers_of(inheritable_now)
    bounding_now = {cap for cap in caps.inheritable if kernel.bounding_has(cap)}
    allowed_inheritable = have_inheritable | bounding_now
    if not effective_now >> ALL_CAPABILITIES["CAP_SETPCAP"] & 1:
        allowed_inheritable &= have_inheritable | have_permitted

    permitted = caps.permitted & have_permitted
    effective = caps.effective & permitted
    inheritable = caps.inheritable & allowed_inheritable
    ambient = caps.ambient & permitted & inheritable
    skipped = (
        (caps.permitted - permitted)
        | (caps.effective - effective)
        | (caps.inheritable - inheritable)
        | (caps.ambient - ambient)
    )

    kernel.capset(mask_of(effective), mask_of(permitted), mask_of(inheritable))
    kernel.ambient_clear_all()
    for cap in sorted(ambient):
        try:
            kernel.ambient_raise(cap)
        except OSError as exc:
            # EPERM: SECBIT_NO_CAP_AMBIENT_RAISE is set, or the kernel disagrees with our
            # reading of the sets. The capability cannot be granted: skip it like the rest.
            if exc.errno != errno.EPERM:
                raise
            skipped |= {cap}
    return capability_names(skipped)


def _capability_number(name: str) -> int:
    try:
        return ALL_CAPABILITIES[name]
    except KeyError:
        raise errdefs.InvalidParameter(f'unknown capability "{name}"') from None
