"""mount(2), umount2(2), pivot_root(2) and the mount flag constants."""

import ctypes

from sampan.kernel.libc import LIBC, check, cstr, retry

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

PROPAGATION_FLAGS = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE

_SYS_PIVOT_ROOT = 155  # x86_64


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError naming the call and the target; retried on EINTR.

    ``flags`` is an ``unsigned long`` in the C prototype: passed as one explicitly, so the
    upper half of the register is defined (ctypes would pass a bare int as a 32-bit ``int``).
    """
    args = (cstr(source), cstr(target), cstr(fstype), ctypes.c_ulong(flags), cstr(data))
    retry(lambda: check(LIBC.mount(*args), "mount", target))


def umount(target: str, flags: int = 0) -> None:
    """umount2(2); retried on EINTR."""
    retry(lambda: check(LIBC.umount2(cstr(target), flags), "umount", target))


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): glibc has no wrapper, so go through syscall(2)."""
    check(LIBC.syscall(_SYS_PIVOT_ROOT, cstr(new_root), cstr(put_old)), "pivot_root", new_root)


def chroot(path: str) -> None:
    check(LIBC.chroot(cstr(path)), "chroot", path)
