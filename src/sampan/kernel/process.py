"""Per-process kernel knobs: prctl(2), hostnames, personality(2), close_range(2)."""

import ctypes

from sampan.kernel.libc import LIBC, check

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

CLOSE_RANGE_CLOEXEC = 1 << 2
_SYS_CLOSE_RANGE = 436  # x86_64
_SYS_KEYCTL = 250  # x86_64
_KEYCTL_JOIN_SESSION_KEYRING = 1


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(
        LIBC.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4),
                   ctypes.c_ulong(arg5)),
        "prctl",
    )


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to us, so we can reap the container's init."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(signal: int) -> None:
    prctl(PR_SET_PDEATHSIG, signal)


def sethostname(name: str) -> None:
    raw = name.encode()
    check(LIBC.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(LIBC.setdomainname(raw, len(raw)), "setdomainname")


def personality(persona: int) -> None:
    check(LIBC.personality(ctypes.c_ulong(persona)), "personality")


def mark_fds_cloexec(first: int) -> None:
    """Set close-on-exec on every fd >= ``first`` so the container inherits none of ours."""
    check(LIBC.syscall(_SYS_CLOSE_RANGE, first, ctypes.c_uint(0xFFFFFFFF), CLOSE_RANGE_CLOEXEC),
          "close_range")


def join_new_session_keyring(name: str) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): give the container its own session keyring, so
    keys the host's session holds are not reachable from inside (runc does the same)."""
    check(LIBC.syscall(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, name.encode()), "keyctl")
