"""A few BPF instructions, run before libseccomp's program, that answer ENOSYS to syscalls
newer than every syscall the profile names.

Why: a profile denies what it does not list, with EPERM. A C library that tries a syscall
added after the profile was written (clone3, faccessat2, fchmodat2 in their day) falls back
to the older call only on ENOSYS; EPERM makes the program fail instead. runc prepends the same
kind of stub. It is left out when the default action already lets syscalls through (allow,
log, trace) or already answers ENOSYS.

The stub, per architecture the filter covers (``seccomp_data.arch`` at offset 4, ``nr`` at 0):

    ld  arch
    jeq AUDIT_ARCH_X, 0, <next arch>
    ld  nr
    jset X32_BIT, <x32>, 0          (x86_64 only: x32 shares its audit arch)
    jgt last_nr(X), <enosys>, <filter>
    ...
    ja  <filter>
  enosys: ret SECCOMP_RET_ERRNO | ENOSYS
  filter: libseccomp's program

Classic BPF jumps are relative and only go forward, so prepending leaves the program valid.
"""

import struct

from sampan.runtime.seccomp.profile import ACT_ALLOW, ACT_ERRNO, ACT_LOG, ACT_TRACE

ENOSYS = 38

AUDIT_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X32 = 0x4000003E  # libseccomp's token; the kernel reports AUDIT_ARCH_X86_64
X32_SYSCALL_BIT = 0x40000000

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT_K = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_JA = 0x05  # BPF_JMP | BPF_JA
_RET_K = 0x06  # BPF_RET | BPF_K
_OFFSET_NR = 0
_OFFSET_ARCH = 4

_Jump = int | str  # a relative offset, or a label resolved at the end


def wants_stub(default_action: int) -> bool:
    if default_action in (ACT_ALLOW, ACT_LOG) or default_action & 0xFFFF0000 == ACT_TRACE:
        return False
    return default_action != ACT_ERRNO | ENOSYS


def build_stub(last_syscalls: dict[int, int]) -> bytes:
    """The stub for ``last_syscalls``: libseccomp arch token -> highest syscall number the
    profile names on that architecture (x32 numbers include the x32 bit)."""
    x32_last = last_syscalls.get(SCMP_ARCH_X32)
    arches = {arch: last for arch, last in last_syscalls.items() if arch != SCMP_ARCH_X32}
    if x32_last is not None and AUDIT_ARCH_X86_64 not in arches:
        arches[AUDIT_ARCH_X86_64] = -1  # x32 only: 64-bit syscalls go straight to the filter
    if not arches:
        return b""

    code: list[tuple[int, _Jump, _Jump, int | str]] = []
    labels: dict[str, int] = {}
    code.append((_LD_W_ABS, 0, 0, _OFFSET_ARCH))
    for number, (arch, last) in enumerate(sorted(arches.items())):
        following = f"arch{number + 1}"
        code.append((_JEQ_K, 0, following, arch))
        code.append((_LD_W_ABS, 0, 0, _OFFSET_NR))
        if arch == AUDIT_ARCH_X86_64:
            code.append((_JSET_K, f"x32_{number}", 0, X32_SYSCALL_BIT))
            code.append(_compare(last))
            labels[f"x32_{number}"] = len(code)
            code.append(_compare(x32_last if x32_last is not None else -1))
        else:
            code.append(_compare(last))
        labels[following] = len(code)
    code.append((_JA, 0, 0, "filter"))
    labels["enosys"] = len(code)
    code.append((_RET_K, 0, 0, ACT_ERRNO | ENOSYS))
    labels["filter"] = len(code)

    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        def resolve(target: _Jump | int, here: int = index) -> int:
            return labels[target] - here - 1 if isinstance(target, str) else target

        out += struct.pack("=HBBI", op, resolve(jt), resolve(jf), resolve(k))
    return bytes(out)


def _compare(last: int) -> tuple[int, _Jump, _Jump, int | str]:
    if last < 0:  # nothing named on this architecture: leave every syscall to the filter
        return (_JA, 0, 0, "filter")
    return (_JGT_K, "enosys", "filter", last)
