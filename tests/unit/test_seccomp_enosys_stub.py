"""The ENOSYS stub prepended to a filter: run it through a small classic-BPF interpreter."""

import struct

from sampan.runtime.seccomp.enosys_stub import (
    AUDIT_ARCH_X86_64,
    ENOSYS,
    SCMP_ARCH_X32,
    X32_SYSCALL_BIT,
    build_stub,
    wants_stub,
)
from sampan.runtime.seccomp.profile import (
    ACT_ALLOW,
    ACT_ERRNO,
    ACT_KILL_PROCESS,
    ACT_LOG,
    ACT_TRACE,
)

AUDIT_ARCH_I386 = 0x40000003
FILTER = "filter"  # the stub fell through to the program after it


def run(stub: bytes, arch: int, nr: int) -> int | str:
    """Execute ``stub`` on seccomp_data {nr, arch}; return the verdict or FILTER."""
    data = {0: nr, 4: arch}
    insns = [struct.unpack("=HBBI", stub[i : i + 8]) for i in range(0, len(stub), 8)]
    pc, acc = 0, 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = data[k]
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return k
        else:
            taken = {0x15: acc == k, 0x25: acc > k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        assert pc <= len(insns), "jump beyond the stub"
    assert pc == len(insns)
    return FILTER


def test_stub_only_for_defaults_that_deny_with_something_else_than_enosys() -> None:
    assert wants_stub(ACT_ERRNO | 1)
    assert wants_stub(ACT_KILL_PROCESS)
    assert not wants_stub(ACT_ERRNO | ENOSYS)
    assert not wants_stub(ACT_ALLOW)
    assert not wants_stub(ACT_LOG)
    assert not wants_stub(ACT_TRACE | 1)


def test_newer_syscalls_get_enosys_on_each_architecture() -> None:
    stub = build_stub({AUDIT_ARCH_X86_64: 456, AUDIT_ARCH_I386: 300})
    assert run(stub, AUDIT_ARCH_X86_64, 0) == FILTER
    assert run(stub, AUDIT_ARCH_X86_64, 456) == FILTER
    assert run(stub, AUDIT_ARCH_X86_64, 457) == ACT_ERRNO | ENOSYS
    assert run(stub, AUDIT_ARCH_I386, 300) == FILTER
    assert run(stub, AUDIT_ARCH_I386, 301) == ACT_ERRNO | ENOSYS
    assert run(stub, 0xC00000B7, 9999) == FILTER  # an arch the stub does not know


def test_x32_syscalls_are_compared_with_the_x32_table() -> None:
    stub = build_stub({AUDIT_ARCH_X86_64: 456, SCMP_ARCH_X32: X32_SYSCALL_BIT | 547})
    assert run(stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 500) == FILTER
    assert run(stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 548) == ACT_ERRNO | ENOSYS
    assert run(stub, AUDIT_ARCH_X86_64, 500) == ACT_ERRNO | ENOSYS


def test_x32_numbers_go_to_the_filter_when_the_profile_has_no_x32() -> None:
    stub = build_stub({AUDIT_ARCH_X86_64: 456})
    assert run(stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 600) == FILTER


def test_no_architectures_no_stub() -> None:
    assert build_stub({}) == b""
