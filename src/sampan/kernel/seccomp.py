"""seccomp(2): install a classic-BPF syscall filter on the calling thread (or process).

The program is compiled elsewhere (``sampan.runtime.seccomp``, with libseccomp, in the runtime's
parent process) and arrives here as bytes: an array of ``struct sock_filter`` (8 bytes each:
``u16 code; u8 jt; u8 jf; u32 k``). Loading needs nothing but this raw syscall, so it works
in a container's init after ``pivot_root`` has taken the host's libraries away.

The kernel accepts a filter only if the thread has ``no_new_privs`` set or holds
CAP_SYS_ADMIN in its user namespace (seccomp(2), "EACCES"). Filters stack: each one loaded
adds to the ones already there, and the most restrictive verdict wins.
"""

import ctypes
import errno
import os

from sampan.kernel.libc import LIBC, check

SECCOMP_SET_MODE_FILTER = 1

# Flags of SECCOMP_SET_MODE_FILTER (linux/seccomp.h).
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4

SOCK_FILTER_SIZE = 8  # sizeof(struct sock_filter)
BPF_MAXINSNS = 4096  # the kernel refuses longer classic-BPF programs

# __NR_seccomp per machine (it has no glibc wrapper in Debian 12's libc).
_SYS_SECCOMP = {
    "x86_64": 317,
    "i386": 354,
    "i686": 354,
    "aarch64": 277,
    "riscv64": 277,
    "armv7l": 383,
    "ppc64le": 358,
    "s390x": 348,
}


class _SockFprog(ctypes.Structure):
    """``struct sock_fprog``: the program length in instructions and a pointer to them."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_filter(program: bytes, flags: int = 0) -> None:
    """Install ``program`` with ``seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)``.

    Raises ``OSError`` naming "seccomp": EACCES without no_new_privs or CAP_SYS_ADMIN,
    EINVAL for an unknown flag or a program the kernel's checker rejects. With
    SECCOMP_FILTER_FLAG_TSYNC the kernel returns, instead of -1, the id of a thread it could
    not synchronise (one that already has a diverging filter); that is an error too.
    """
    count, rest = divmod(len(program), SOCK_FILTER_SIZE)
    if rest or not 0 < count <= BPF_MAXINSNS:
        raise OSError(
            errno.EINVAL,
            f"seccomp: program of {len(program)} bytes is not 1..{BPF_MAXINSNS} "
            f"instructions of {SOCK_FILTER_SIZE} bytes",
        )
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    result = check(
        LIBC.syscall(
            ctypes.c_long(_syscall_number()),
            ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
            ctypes.c_ulong(flags),
            ctypes.byref(prog),
        ),
        "seccomp",
    )
    if result > 0 and flags & SECCOMP_FILTER_FLAG_TSYNC:
        raise OSError(
            errno.ESRCH, f"seccomp: thread {result} could not be synchronised (TSYNC)"
        )


def _syscall_number() -> int:
    machine = os.uname().machine
    try:
        return _SYS_SECCOMP[machine]
    except KeyError:
        raise OSError(errno.ENOSYS, f"seccomp: syscall number unknown on {machine}") from None
