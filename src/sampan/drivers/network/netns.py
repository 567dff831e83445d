"""Network namespace files: a namespace kept alive by a bind mount of its nsfs inode, as
``ip netns`` does, so it outlives the process that made it and the runtime can join it
(OCI ``linux.namespaces[{type: network, path}]``).

The daemon never changes its own namespaces (DESIGN.md decision 2). ``unshare(2)`` and
``setns(2)`` with ``CLONE_NEWNET`` act on the calling thread only, so each is done in a
short-lived thread of its own that exits afterwards: the daemon's other threads, its event
loop included, stay in the host namespace whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from sampan.kernel import mount as kmount
from sampan.kernel import namespaces

_T = TypeVar("_T")


class NamespaceCalls(Protocol):
    """The syscalls this module makes (tests may pass a recording fake)."""

    def unshare(self, flags: int) -> None: ...
    def setns(self, fd: int, nstype: int, path: str) -> None: ...
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int) -> None: ...
    def umount(self, target: str, flags: int) -> None: ...


class KernelNamespaceCalls:
    def unshare(self, flags: int) -> None:
        namespaces.unshare(flags)

    def setns(self, fd: int, nstype: int, path: str) -> None:
        namespaces.setns(fd, nstype, path)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int) -> None:
        kmount.mount(source, target, fstype, flags)

    def umount(self, target: str, flags: int) -> None:
        kmount.umount(target, flags)


def in_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` in a new thread and return its result (or raise its error): a thread
    whose namespaces were changed dies with the change."""
    result: list[_T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller below
            error.append(exc)

    thread = threading.Thread(target=body, name="sampan-netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as handle:
        return any(line.split(" ")[4] == path for line in handle)


class NetnsFiles:
    """Namespace files under one directory (``<exec-root>/netns``)."""

    def __init__(self, directory: str, calls: NamespaceCalls | None = None) -> None:
        self.directory = directory
        self._calls = calls or KernelNamespaceCalls()

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _prepare_directory(self) -> None:
        """The directory is a mount of its own with shared propagation (as ``ip netns``
        makes /run/netns), so an unmount here reaches the copies that mount namespaces
        created later hold, and the namespace can die with its last process."""
        os.makedirs(self.directory, mode=0o711, exist_ok=True)
        if _is_mountpoint(self.directory):
            return
        self._calls.mount(self.directory, self.directory, None, kmount.MS_BIND | kmount.MS_REC)
        self._calls.mount(None, self.directory, None, kmount.MS_SHARED | kmount.MS_REC)

    def create(self, name: str) -> str:
        """A new, empty network namespace (only ``lo``, down) kept at ``path(name)``."""
        self._prepare_directory()
        target = self.path(name)
        if os.path.exists(target) and _is_mountpoint(target):
            return target
        with open(target, "w"):
            pass

        def make() -> None:
            self._calls.unshare(namespaces.CLONE_NEWNET)
            source = f"/proc/self/task/{threading.get_native_id()}/ns/net"
            self._calls.mount(source, target, None, kmount.MS_BIND)

        try:
            in_thread(make)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        return target

    def share(self, name: str, source: str) -> str:
        """Keep another namespace file (``container:<id>`` mode) under ``name`` too."""
        self._prepare_directory()
        target = self.path(name)
        if os.path.exists(target) and _is_mountpoint(target):
            return target
        with open(target, "w"):
            pass
        self._calls.mount(source, target, None, kmount.MS_BIND)
        return target

    def remove(self, name: str) -> None:
        """Unmount and delete; absent already counts as done."""
        target = self.path(name)
        with contextlib.suppress(FileNotFoundError, OSError):
            if _is_mountpoint(target):
                self._calls.umount(target, kmount.MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)

    def shared(self, name: str) -> bool:
        """Whether another file here holds the same namespace (a ``container:<id>`` mode
        container joined it): an nsfs mount's inode is the namespace's."""
        try:
            inode = os.stat(self.path(name)).st_ino
        except FileNotFoundError:
            return False
        for other in self.names():
            if other != name:
                with contextlib.suppress(OSError):
                    if os.stat(self.path(other)).st_ino == inode:
                        return True
        return False

    def names(self) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(os.listdir(self.directory))
        return []


def socket_in_netns(netns_path: str, family: int, kind: int, proto: int = 0,
                    calls: NamespaceCalls | None = None) -> socket.socket:
    """A socket created inside the namespace at ``netns_path``: a socket belongs for life
    to the namespace its creator was in, whichever thread uses it later (socket(7))."""
    syscalls = calls or KernelNamespaceCalls()

    def make() -> socket.socket:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, namespaces.CLONE_NEWNET, netns_path)
        finally:
            os.close(fd)
        return socket.socket(family, kind, proto)

    return in_thread(make)


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up(netns_path: str, calls: NamespaceCalls | None = None) -> None:
    """Bring ``lo`` up in the namespace with two ioctls (netdevice(7)) on a socket made inside
    it: a new network namespace starts with its loopback down, and ``--network none``
    containers still expect 127.0.0.1 to work. Cheaper than netlink through pyroute2,
    whose import alone costs 167 ms here."""
    import fcntl
    import struct

    with socket_in_netns(netns_path, socket.AF_INET, socket.SOCK_DGRAM, calls=calls) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
