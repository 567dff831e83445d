"""unshare(2) and setns(2): Python 3.11 has neither in ``os``."""

from sampan.kernel.libc import LIBC, check

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# OCI linux.namespaces[].type -> (clone flag, name of the file under /proc/<pid>/ns)
NAMESPACES: dict[str, tuple[int, str]] = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}


def unshare(flags: int) -> None:
    check(LIBC.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    check(LIBC.setns(fd, nstype), "setns", path)
