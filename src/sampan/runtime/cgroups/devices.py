"""Device access rules (OCI ``linux.resources.devices``) for both cgroup versions.

Rules are read in order and the last rule that matches an access decides it; an access no rule
matches is allowed (the state a new cgroup starts in). Container configs therefore begin with
``{"allow": false, "access": "rwm"}`` and then allow the devices they need.

* cgroup v1: each rule is one write to ``devices.allow`` or ``devices.deny`` (``c 1:3 rwm``);
  the kernel applies them in order with the same last-rule-wins effect
  (Documentation/admin-guide/cgroup-v1/devices.rst).
* cgroup v2: there are no device files. :func:`compile_program` builds a
  ``BPF_PROG_TYPE_CGROUP_DEVICE`` program that the kernel runs on every device open and mknod
  in the cgroup, with a ``struct bpf_cgroup_dev_ctx`` as its context (include/uapi/linux/bpf.h):
  ``u32 access_type`` (access bits << 16 | device type), ``u32 major``, ``u32 minor``. It
  returns 1 to allow and 0 to deny (the opener sees EPERM).
"""


from __future__ import annotations

import collections
import struct
from collections.abc import Mapping, Sequence

from sampan import errdefs

# include/uapi/linux/bpf.h: BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*
_DEV_TYPE = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}
_ALL_ACCESS = 7


# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    class DeviceRule(NamedTuple):
        allow: bool
        type: str  # "a" (all), "b" or "c"
        major: int | None  # None: any
        minor: int | None
        access: str  # subset of "rwm", in that order
else:
    DeviceRule = collections.namedtuple("DeviceRule", "allow type major minor access")



def _wildcard(value: Any, name: str) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errdefs.InvalidParameter(
            f"linux.resources.devices {name} must be >= -1, not {value!r}"
        )
    return value


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> list[DeviceRule]:
    """Validate and normalise OCI device rules."""
    rules: list[DeviceRule] = []
    for entry in raw:
        allow = entry.get("allow")
        if not isinstance(allow, bool):
            raise errdefs.InvalidParameter("linux.resources.devices entries need a boolean allow")
        kind = entry.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise errdefs.InvalidParameter(
                f"linux.resources.devices type {kind!r} is not a, b or c"
            )
        access = entry.get("access") or "rwm"
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise errdefs.InvalidParameter(
                f"linux.resources.devices access {access!r} is not made of r, w and m"
            )
        rules.append(
            DeviceRule(
                allow=allow,
                type=kind,
                major=_wildcard(entry.get("major"), "major"),
                minor=_wildcard(entry.get("minor"), "minor"),
                access="".join(c for c in "rwm" if c in access),
            )
        )
    return rules


def v1_line(rule: DeviceRule) -> str:
    """The ``devices.allow`` / ``devices.deny`` line for a rule."""
    if rule.type == "a" and rule.major is None and rule.minor is None and rule.access == "rwm":
        return "a"
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


# --- eBPF --------------------------------------------------------------------------------
# struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } (little endian)
_LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_MOV64_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
_MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
_AND64_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
_RSH64_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X: if dst != src: pc += off
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
_EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0

# Registers after the prologue: r2 device type, r3 requested access bits, r4 major, r5 minor.
_TYPE, _REQ, _MAJOR, _MINOR, _SCRATCH = 2, 3, 4, 5, 6


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_PROLOGUE = b"".join(
    [
        _insn(_LDX_MEM_W, _TYPE, 1, 0),  # r2 = ctx->access_type
        _insn(_MOV64_X, _REQ, _TYPE),  # r3 = r2
        _insn(_AND64_K, _TYPE, imm=0xFFFF),  # r2 &= 0xffff: device type
        _insn(_RSH64_K, _REQ, imm=16),  # r3 >>= 16: access bits
        _insn(_LDX_MEM_W, _MAJOR, 1, 4),  # r4 = ctx->major
        _insn(_LDX_MEM_W, _MINOR, 1, 8),  # r5 = ctx->minor
    ]
)


def _rule_block(rule: DeviceRule) -> tuple[list[tuple[int, int, int, int]], bool]:
    """The checks of a rule as (code, dst, src, imm) jumps-to-next-rule, and whether none."""
    checks: list[tuple[int, int, int, int]] = []
    if rule.type != "a":
        checks.append((_JNE_K, _TYPE, 0, _DEV_TYPE[rule.type]))
    mask = sum(_ACCESS[c] for c in rule.access)
    if mask != _ALL_ACCESS:
        checks.append((_MOV64_X, _SCRATCH, _REQ, 0))
        checks.append((_AND64_K, _SCRATCH, 0, mask))
        if rule.allow:
            # An allow rule covers the access only if every requested bit is in the rule.
            checks.append((_JNE_X, _SCRATCH, _REQ, 0))
        else:
            # A deny rule matches if any requested bit is in the rule.
            checks.append((_JEQ_K, _SCRATCH, 0, 0))
    if rule.major is not None:
        checks.append((_JNE_K, _MAJOR, 0, rule.major))
    if rule.minor is not None:
        checks.append((_JNE_K, _MINOR, 0, rule.minor))
    return checks, not checks


def compile_program(rules: Sequence[DeviceRule]) -> bytes:
    """Compile rules (last match wins, default allow) to cgroup device eBPF instructions."""
    code = [_PROLOGUE]
    # Test the last rule first: the first rule that matches, walking backwards, decides.
    for rule in reversed(rules):
        checks, unconditional = _rule_block(rule)
        verdict = [_insn(_MOV64_K, 0, imm=1 if rule.allow else 0), _insn(_EXIT)]
        remaining = len(checks) + len(verdict)
        for code_, dst, src, imm in checks:
            remaining -= 1
            is_jump = code_ in (_JNE_K, _JNE_X, _JEQ_K)
            code.append(_insn(code_, dst, src, remaining if is_jump else 0, imm))
        code.extend(verdict)
        if unconditional:
            # Everything after an unconditional verdict is unreachable, which the verifier
            # rejects, so the program ends here.
            return b"".join(code)
    code.append(_insn(_MOV64_K, 0, imm=1))
    code.append(_insn(_EXIT))
    return b"".join(code)
