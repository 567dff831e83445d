"""The one place that applies a network plan: netlink through pyroute2.

``pyroute2`` costs about 170 ms to import, so it is imported on the first :meth:`apply`, never
at daemon start or in processes that do not change links. Operations are idempotent where the
kernel allows it: a link or address that already exists is left as it is, and deleting a link
that is gone succeeds, so a plan can be re-applied after a crash.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sampan.drivers.network.netns import socket_in_netns
from sampan.drivers.network.plan import (
    AddAddress,
    AddDefaultRoute,
    CreateBridge,
    CreateVeth,
    DeleteLink,
    LinkUp,
    Operation,
    SetMaster,
    WriteSysctl,
)

NETLINK_ROUTE = 0


class Executor(Protocol):
    """What network users need from an executor (tests pass a recording fake)."""

    def apply(self, operations: Sequence[Operation]) -> None: ...


def _netlink_errno(exc: BaseException) -> int:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    return getattr(exc, "errno", 0) or 0


class NetlinkExecutor:
    """Applies operations with one netlink socket per namespace, opened per :meth:`apply`."""

    def __init__(self, proc_sys: str = "/proc/sys") -> None:
        self._proc_sys = proc_sys

    def apply(self, operations: Sequence[Operation]) -> None:
        # imported here, not at the top: 170 ms (see the module docstring)
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        logging.getLogger("pyroute2").setLevel(logging.WARNING)  # a line per netlink message

        sockets: dict[str, Any] = {}

        def socket_for(netns: str) -> Any:
            # Not pyroute2's own netns support: it forks the calling process to make the
            # socket, and the fork of an asyncio daemon shares the loop's signal wake-up
            # pipe (a SIGTERM sent to that child reads as one sent to the daemon).
            if netns not in sockets:
                if netns:
                    sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_DGRAM,
                                           NETLINK_ROUTE)
                    sockets[netns] = IPRoute(fileno=sock.detach())
                else:
                    sockets[netns] = IPRoute()
            return sockets[netns]

        try:
            for operation in operations:
                self._apply_one(operation, socket_for)
        finally:
            for sock in sockets.values():
                sock.close()

    def _apply_one(self, op: Operation, socket_for: Any) -> None:
        if isinstance(op, WriteSysctl):
            with open(os.path.join(self._proc_sys, op.path), "w") as handle:
                handle.write(op.value)
            return
        netns = getattr(op, "netns", "") if not isinstance(op, CreateVeth) else ""
        ipr = socket_for(netns)
        if isinstance(op, CreateBridge):
            with _tolerate(errno.EEXIST):
                ipr.link("add", ifname=op.name, kind="bridge", mtu=op.mtu)
        elif isinstance(op, CreateVeth):
            with _open_ro(op.netns) as fd:
                peer: dict[str, Any] = {"ifname": op.peer, "net_ns_fd": fd, "mtu": op.mtu}
                if op.mac:
                    peer["address"] = op.mac
                try:
                    ipr.link("add", ifname=op.host, kind="veth", mtu=op.mtu, peer=peer)
                except Exception as exc:
                    # The pair of an earlier run of this container on this network, still
                    # being deleted by the kernel with its dead namespace: delete it now.
                    if _netlink_errno(exc) != errno.EEXIST:
                        raise
                    self._apply_one(DeleteLink(op.host), socket_for)
                    ipr.link("add", ifname=op.host, kind="veth", mtu=op.mtu, peer=peer)
        elif isinstance(op, SetMaster):
            ipr.link("set", index=_index(ipr, op.ifname), master=_index(ipr, op.master))
        elif isinstance(op, AddAddress):
            with _tolerate(errno.EEXIST):
                ipr.addr("add", index=_index(ipr, op.ifname), address=op.address,
                         prefixlen=op.prefixlen)
        elif isinstance(op, LinkUp):
            ipr.link("set", index=_index(ipr, op.ifname), state="up")
        elif isinstance(op, AddDefaultRoute):
            with _tolerate(errno.EEXIST):  # a first network's gateway wins
                ipr.route("add", dst="0.0.0.0/0", gateway=op.gateway)
        elif isinstance(op, DeleteLink):
            found = ipr.link_lookup(ifname=op.ifname)
            if found:
                with _tolerate(errno.ENODEV):
                    ipr.link("del", index=found[0])
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unknown network operation {op!r}")


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise OSError(errno.ENODEV, f"link {ifname}: no such device", ifname)
    return int(found[0])


@contextmanager
def _tolerate(code: int) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _netlink_errno(exc) != code:
            raise


@contextmanager
def _open_ro(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def link_names() -> list[str]:
    """The host namespace's link names (for leak checks and name choice)."""
    return sorted(os.listdir("/sys/class/net"))
