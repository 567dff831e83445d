"""Capabilities: capget(2)/capset(2) and the prctl(2) knobs around them.

A thread has five capability sets (capabilities(7)): bounding (an upper limit, inherited
across fork and execve, can only shrink), permitted, effective, inheritable and ambient.
capset(2) with the version-3 header takes the three middle sets as two 32-bit words each
(bits 0-31, then 32-63). The bounding and ambient sets have no capset: they are changed one
capability at a time through prctl(2).
"""

import ctypes
import errno

from sampan.kernel.libc import LIBC, check

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_GET_KEEPCAPS = 7
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CapDataPair = _CapData * 2


def _prctl(call: str, option: int, arg2: int = 0, arg3: int = 0) -> int:
    # The unused arguments must be zero: PR_CAP_AMBIENT fails with EINVAL otherwise.
    return check(
        LIBC.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        call,
    )


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return ``(effective, permitted, inheritable)`` of ``pid`` (0: the calling thread)
    as 64-bit masks (bit n is capability n)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = _CapDataPair()
    check(LIBC.capget(ctypes.byref(header), ctypes.byref(data)), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's three sets. The kernel refuses (EPERM) a permitted set that is
    not a subset of the current one, an effective set not inside the new permitted set, and
    an inheritable set outside (inheritable | bounding), or outside (inheritable | permitted)
    without CAP_SETPCAP."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = _CapDataPair()
    for word in (0, 1):
        shift = 32 * word
        data[word].effective = (effective >> shift) & 0xFFFFFFFF
        data[word].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[word].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    check(LIBC.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def bounding_has(cap: int) -> bool:
    """PR_CAPBSET_READ. A capability beyond the kernel's last one reads as absent (the
    kernel answers EINVAL for it)."""
    try:
        return _prctl("prctl(PR_CAPBSET_READ)", PR_CAPBSET_READ, cap) == 1
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise


def bounding_drop(cap: int) -> None:
    """PR_CAPBSET_DROP: needs CAP_SETPCAP in the effective set."""
    _prctl("prctl(PR_CAPBSET_DROP)", PR_CAPBSET_DROP, cap)


def ambient_raise(cap: int) -> None:
    """Raise ``cap`` in the ambient set: it must be both permitted and inheritable."""
    _prctl("prctl(PR_CAP_AMBIENT_RAISE)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def ambient_is_set(cap: int) -> bool:
    return _prctl("prctl(PR_CAP_AMBIENT_IS_SET)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap) == 1


def ambient_clear_all() -> None:
    _prctl("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def set_keepcaps(keep: bool) -> None:
    """PR_SET_KEEPCAPS: when set, a setuid() away from uid 0 keeps the permitted set (the
    effective set is still cleared). It is reset by execve."""
    _prctl("prctl(PR_SET_KEEPCAPS)", PR_SET_KEEPCAPS, 1 if keep else 0)


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits, file caps).
    It cannot be unset and is inherited by children."""
    _prctl("prctl(PR_SET_NO_NEW_PRIVS)", PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return _prctl("prctl(PR_GET_NO_NEW_PRIVS)", PR_GET_NO_NEW_PRIVS) == 1
