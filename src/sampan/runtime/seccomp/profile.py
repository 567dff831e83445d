"""Read an OCI ``linux.seccomp`` profile into a :class:`FilterPlan` (pure, no libseccomp).

The plan is what libseccomp is then told, rule by rule. Everything runc decides before it
calls libseccomp is decided here, so it can be tested without the library:

- actions are encoded as libseccomp's 32-bit values (``SCMP_ACT_ERRNO(n)`` carries ``n``);
- a rule whose action equals the default action is dropped (libseccomp refuses it with
  EACCES, and it would change nothing);
- a rule whose ``args`` name the same argument index twice becomes one rule per condition
  (runc's behaviour: conditions on one index cannot be ANDed by libseccomp, so they are ORed);
- unknown fields are ignored as Go's JSON decoder ignores them, but the conditions of
  Docker's profile format (``includes``/``excludes``) are refused: they must be resolved
  for the container's capabilities first (see :mod:`sampan.runtime.seccomp.docker_profile`).
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

from sampan import errdefs
from sampan.kernel.seccomp import (
    SECCOMP_FILTER_FLAG_LOG,
    SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    SECCOMP_FILTER_FLAG_TSYNC,
)

EPERM = 1

# libseccomp's action values (seccomp.h); they are the kernel's SECCOMP_RET_* values.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_ACTIONS_WITH_DATA = (ACT_ERRNO, ACT_TRACE)

# enum scmp_compare
_OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI architecture names -> libseccomp's names (seccomp_arch_resolve_name).
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

MAX_ARG_INDEX = 5  # syscalls take at most six arguments
_U64 = (1 << 64) - 1
_ERRNO_MAX = 0xFFFF  # the action carries 16 bits of data


# NamedTuples, not dataclasses: they are defined 8x faster, and this module is imported on
# every container start.


class ArgCondition(NamedTuple):
    """``struct scmp_arg_cmp``. For MASKED_EQ ``value`` is the mask and ``value_two`` the
    value the masked argument must equal (OCI and libseccomp agree on that order)."""

    arg: int  # the argument index, 0..5
    op: int
    value: int
    value_two: int


class SyscallRule(NamedTuple):
    name: str
    action: int
    conditions: tuple[ArgCondition, ...] = ()


class FilterPlan(NamedTuple):
    default_action: int
    architectures: tuple[str, ...]  # libseccomp names; empty: the native one only
    flags: int
    rules: tuple[SyscallRule, ...]
    # every syscall the profile names, also in rules dropped above: the ENOSYS stub needs
    # the newest one per architecture
    named_syscalls: tuple[str, ...] = ()


def plan_filter(profile: Mapping[str, Any]) -> FilterPlan:
    """Check ``profile`` and turn it into a :class:`FilterPlan`.

    Raises ``errdefs.InvalidParameter`` naming the field for malformed input and
    ``errdefs.NotImplementedFeature`` for SCMP_ACT_NOTIFY and ``listenerPath``.
    """
    if not isinstance(profile, Mapping):
        raise errdefs.InvalidParameter("linux.seccomp must be an object")
    if profile.get("listenerPath") or profile.get("listenerMetadata"):
        raise errdefs.NotImplementedFeature(
            "linux.seccomp.listenerPath: seccomp user notification is not supported"
        )
    if "defaultAction" not in profile:
        raise errdefs.InvalidParameter("linux.seccomp.defaultAction is required")
    default_action = _action(
        profile["defaultAction"],
        profile.get("defaultErrnoRet"),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )
    architectures = tuple(
        _architecture(name, f"linux.seccomp.architectures[{i}]")
        for i, name in enumerate(_list(profile.get("architectures"), "linux.seccomp.architectures"))
    )
    flags = 0
    for i, name in enumerate(_list(profile.get("flags"), "linux.seccomp.flags")):
        if not isinstance(name, str) or name not in FLAGS:
            raise errdefs.InvalidParameter(f"linux.seccomp.flags[{i}]: unknown flag {name!r}")
        flags |= FLAGS[name]

    rules: list[SyscallRule] = []
    named: dict[str, None] = {}
    for i, entry in enumerate(_list(profile.get("syscalls"), "linux.seccomp.syscalls")):
        rules.extend(_syscall_rules(entry, f"linux.seccomp.syscalls[{i}]", default_action))
        named.update(dict.fromkeys(entry["names"]))
    return FilterPlan(default_action, architectures, flags, tuple(rules), tuple(named))


def _syscall_rules(entry: Any, where: str, default_action: int) -> list[SyscallRule]:
    if not isinstance(entry, Mapping):
        raise errdefs.InvalidParameter(f"{where} must be an object")
    for docker_only in ("includes", "excludes"):
        if entry.get(docker_only):
            raise errdefs.InvalidParameter(
                f"{where}.{docker_only}: a docker profile's conditions must be resolved "
                "for the container's capabilities before compiling"
            )
    names = _list(entry.get("names"), f"{where}.names")
    if not names:
        raise errdefs.InvalidParameter(f"{where}.names must name at least one syscall")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise errdefs.InvalidParameter(f"{where}.names[{j}] must be a syscall name")
    if "action" not in entry:
        raise errdefs.InvalidParameter(f"{where}.action is required")
    action = _action(entry["action"], entry.get("errnoRet"), f"{where}.action", f"{where}.errnoRet")
    conditions = [
        _condition(arg, f"{where}.args[{k}]")
        for k, arg in enumerate(_list(entry.get("args"), f"{where}.args"))
    ]
    if action == default_action:
        return []
    indexes = [condition.arg for condition in conditions]
    if len(set(indexes)) == len(indexes):
        groups = [tuple(conditions)]
    else:
        groups = [(condition,) for condition in conditions]
    return [SyscallRule(name, action, group) for name in names for group in groups]


def _action(name: Any, errno_ret: Any, where: str, errno_where: str) -> int:
    if not isinstance(name, str) or name not in _ACTIONS:
        raise errdefs.InvalidParameter(f"{where}: unknown action {name!r}")
    action = _ACTIONS[name]
    if action == ACT_NOTIFY:
        raise errdefs.NotImplementedFeature(
            f"{where}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported"
        )
    if action not in _ACTIONS_WITH_DATA:
        return action
    # runc: SCMP_ACT_ERRNO and SCMP_ACT_TRACE without errnoRet return EPERM.
    data = EPERM if errno_ret is None else errno_ret
    if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= _ERRNO_MAX:
        raise errdefs.InvalidParameter(f"{errno_where}: {data!r} is not an errno number")
    return action | data


def _architecture(name: Any, where: str) -> str:
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise errdefs.InvalidParameter(f"{where}: unknown architecture {name!r}")
    return ARCHITECTURES[name]


def _condition(arg: Any, where: str) -> ArgCondition:
    if not isinstance(arg, Mapping):
        raise errdefs.InvalidParameter(f"{where} must be an object")
    index = arg.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_ARG_INDEX:
        raise errdefs.InvalidParameter(
            f"{where}.index: {index!r} is not an argument index 0..{MAX_ARG_INDEX}"
        )
    op = arg.get("op")
    if not isinstance(op, str) or op not in _OPERATORS:
        raise errdefs.InvalidParameter(f"{where}.op: unknown operator {op!r}")
    return ArgCondition(
        index,
        _OPERATORS[op],
        _u64(arg.get("value", 0), f"{where}.value"),
        _u64(arg.get("valueTwo", 0), f"{where}.valueTwo"),
    )


def _u64(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
        raise errdefs.InvalidParameter(f"{where}: {value!r} is not an unsigned 64-bit number")
    return int(value)


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise errdefs.InvalidParameter(f"{where} must be a list")
    return list(value)
