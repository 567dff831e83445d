"""Compile a :class:`FilterPlan` to classic BPF with libseccomp (``libseccomp.so.2``, ctypes).

This runs in the runtime's parent process, on a cache miss only: loading the library and
building the filter for Docker's profile costs milliseconds, the container's init must not
pay them, and after ``pivot_root`` the init could not load the library anyway.

The library returns negative errno values (it does not set ``errno``).
"""

import ctypes
import errno
import os
from typing import NamedTuple

from sampan import errdefs
from sampan.kernel.seccomp import BPF_MAXINSNS, SOCK_FILTER_SIZE
from sampan.runtime.seccomp.enosys_stub import build_stub, wants_stub
from sampan.runtime.seccomp.profile import FilterPlan, SyscallRule

_LIBRARY = "libseccomp.so.2"

# enum scmp_filter_attr
_SCMP_FLTATR_CTL_NNP = 3

# seccomp_syscall_resolve_name() for a name it does not know. Other negative numbers are
# libseccomp's "pseudo syscalls": names that exist only on other architectures of the
# filter (socketcall on x86, for one), which it places per architecture itself.
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class CompileResult(NamedTuple):
    program: bytes
    unknown_syscalls: tuple[str, ...]  # names this libseccomp does not know; skipped


_library: ctypes.CDLL | None = None


def _load() -> ctypes.CDLL:
    global _library
    if _library is None:
        try:
            lib = ctypes.CDLL(_LIBRARY)
        except OSError as exc:
            raise errdefs.Unavailable(f"cannot load {_LIBRARY} to compile seccomp: {exc}") from exc
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_arch_native.argtypes = []
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _library = lib
    return _library


def compile_plan(plan: FilterPlan) -> CompileResult:
    """Build ``plan`` with libseccomp and return the BPF program bytes."""
    lib = _load()
    ctx = lib.seccomp_init(plan.default_action)
    if not ctx:
        raise errdefs.System("seccomp_init failed for the default action")
    try:
        # Loading happens in the container's init, which sets no_new_privs itself when the
        # config asks for it; libseccomp must not decide that (its default is to set it).
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
        tokens = [lib.seccomp_arch_native()]
        for arch in plan.architectures:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            tokens.append(token)
            if token == 0:
                raise errdefs.InvalidParameter(f"libseccomp does not know architecture {arch!r}")
            # The native architecture is already in a new filter: EEXIST is fine.
            _check(lib.seccomp_arch_add(ctx, token), f"seccomp_arch_add({arch})", errno.EEXIST)
        unknown: dict[str, None] = {}
        numbers: dict[str, int] = {}
        for rule in plan.rules:
            number = numbers.get(rule.name)
            if number is None:
                number = numbers[rule.name] = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if number == _NR_SCMP_ERROR:
                unknown[rule.name] = None  # a syscall of another kernel or arch: runc skips it
                continue
            _add_rule(lib, ctx, number, rule)
        program = _export(lib, ctx)
        if wants_stub(plan.default_action):
            program = build_stub(_last_syscalls(lib, tokens, plan.named_syscalls)) + program
        if len(program) > BPF_MAXINSNS * SOCK_FILTER_SIZE:
            raise errdefs.InvalidParameter(
                f"seccomp: the profile compiles to {len(program) // SOCK_FILTER_SIZE} "
                f"instructions, more than the kernel's {BPF_MAXINSNS}"
            )
        return CompileResult(program, tuple(unknown))
    finally:
        lib.seccomp_release(ctx)


def _last_syscalls(lib: ctypes.CDLL, tokens: list[int], names: tuple[str, ...]) -> dict[int, int]:
    """Per architecture token, the highest syscall number among ``names`` there."""
    last: dict[int, int] = {}
    for token in dict.fromkeys(tokens):
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, name.encode()) for name in names]
        known = [number for number in numbers if number >= 0]
        if known:
            last[token] = max(known)
    return last


def _add_rule(lib: ctypes.CDLL, ctx: int, number: int, rule: SyscallRule) -> None:
    count = len(rule.conditions)
    array = (_ArgCmp * max(count, 1))()
    for i, condition in enumerate(rule.conditions):
        array[i] = _ArgCmp(condition.arg, condition.op, condition.value, condition.value_two)
    result = lib.seccomp_rule_add_array(ctx, rule.action, number, count, array)
    # EEXIST: the same rule again, as profiles that list a syscall twice have it.
    _check(result, f"seccomp_rule_add({rule.name})", errno.EEXIST)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    # libseccomp 2.5 can only write the program to a file descriptor: use an anonymous file.
    fd = os.memfd_create("sampan-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf", error=errdefs.System)
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _check(
    result: int,
    call: str,
    tolerated: int | None = None,
    error: type[errdefs.SampanError] = errdefs.InvalidParameter,
) -> None:
    if result >= 0 or (tolerated is not None and result == -tolerated):
        return
    raise error(f"seccomp: {call}: {os.strerror(-result)}")
