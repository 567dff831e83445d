"""The embedded DNS server of user-defined networks.

Docker's design: each container's ``/etc/resolv.conf`` names ``127.0.0.11``; a server answers
there with the addresses of the containers on the same networks (names, network aliases,
short IDs; several containers with one alias are returned in a shuffled order, a round robin)
and forwards every other question to the host's resolvers.

Here the server lives in ``sampand``'s event loop: for each container it owns one UDP and
one TCP socket created *inside the container's network namespace* (see
:func:`~.netns.socket_in_netns`) and bound to 127.0.0.11:53 there; a socket keeps the
namespace it was created in, so the loop serves every container from the host namespace
without any per-container process or NAT rule. Forwarded questions leave from ordinary
host sockets, so they reach the host's resolvers even when those are on 127.0.0.x.

Only the parts of RFC 1035 needed for that: one question per message, A answers, an empty
NOERROR answer for other types of a known name (so clients do not fall through to a search
domain), the raw message relayed for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

log = logging.getLogger("sampand.dns")

DNS_ADDRESS = "127.0.0.11"
DNS_PORT = 53
TYPE_A = 1
TYPE_ANY = 255
CLASS_IN = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
TTL = 600
FORWARD_TIMEOUT = 4.0


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int
    end: int  # offset just past the question


def parse_question(message: bytes) -> Question | None:
    """The first question of a query, or None for a message that is not one."""
    if len(message) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", message[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels = []
    offset = 12
    while True:
        if offset >= len(message):
            return None
        length = message[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(message):
            return None
        labels.append(message[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(message):
        return None
    qtype, qclass = struct.unpack("!HH", message[offset:offset + 4])
    return Question(ident, flags, ".".join(labels).lower(), qtype, qclass, offset + 4)


def build_answer(query: bytes, question: Question, addresses: Sequence[str]) -> bytes:
    """A response to ``query`` with one A record per address (pointers to the question's
    name at offset 12)."""
    answers = b""
    if question.qtype in (TYPE_A, TYPE_ANY) and question.qclass == CLASS_IN:
        for address in addresses:
            answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4)
            answers += socket.inet_aton(address)
        count = len(addresses)
    else:
        count = 0
    flags = 0x8000 | (question.flags & 0x0100) | 0x0400 | 0x0080  # QR, RD, AA, RA
    header = struct.pack("!HHHHHH", question.id, flags, 1, count, 0, 0)
    return header + query[12:question.end] + answers


def build_error(query: bytes, question: Question, rcode: int) -> bytes:
    flags = 0x8000 | (question.flags & 0x0100) | 0x0080 | rcode
    header = struct.pack("!HHHHHH", question.id, flags, 1, 0, 0, 0)
    return header + query[12:question.end]


# container id, name -> addresses (None: not a name of the container's networks)
Lookup = Callable[[str, str], list[str] | None]


class _Forwarder:
    """Relays a raw query to the upstream resolvers over UDP, first answer wins."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        self.upstreams = list(upstreams)

    async def forward(self, query: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for server in self.upstreams:
            sock = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                                 socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (server, 53))
                await loop.sock_sendall(sock, query)
                return await asyncio.wait_for(loop.sock_recv(sock, 65535), FORWARD_TIMEOUT)
            except (OSError, TimeoutError):
                continue
            finally:
                sock.close()
        return None


class _Handler:
    def __init__(self, container_id: str, lookup: Lookup, forwarder: _Forwarder) -> None:
        self.container_id = container_id
        self.lookup = lookup
        self.forwarder = forwarder

    async def answer(self, query: bytes) -> bytes | None:
        question = parse_question(query)
        if question is None:
            return None
        addresses = self.lookup(self.container_id, question.name)
        if addresses is not None:
            shuffled = list(addresses)
            random.shuffle(shuffled)
            return build_answer(query, question, shuffled)
        reply = await self.forwarder.forward(query)
        return reply if reply is not None else build_error(query, question, RCODE_SERVFAIL)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.handler.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@dataclass
class _Served:
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server


SocketFactory = Callable[[str, int, int], socket.socket]  # (netns path, family, type)


class EmbeddedDns:
    """One server per container, all in the calling event loop."""

    def __init__(self, lookup: Lookup, make_socket: SocketFactory) -> None:
        self._lookup = lookup
        self._make_socket = make_socket
        self._served: dict[str, _Served] = {}

    def serving(self) -> list[str]:
        return sorted(self._served)

    async def serve(self, container_id: str, netns_path: str, upstreams: Sequence[str]) -> None:
        """Listen on 127.0.0.11:53 (UDP and TCP) inside the container's namespace and
        forward unknown names to ``upstreams``. The namespace's ``lo`` must be up (the
        network plan brings it up)."""
        if container_id in self._served:
            return
        udp_sock = await asyncio.to_thread(self._make_socket, netns_path, socket.AF_INET,
                                           socket.SOCK_DGRAM)
        tcp_sock = await asyncio.to_thread(self._make_socket, netns_path, socket.AF_INET,
                                           socket.SOCK_STREAM)
        try:
            udp_sock.bind((DNS_ADDRESS, DNS_PORT))
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_sock.bind((DNS_ADDRESS, DNS_PORT))
            tcp_sock.listen(64)
            udp_sock.setblocking(False)
            tcp_sock.setblocking(False)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        handler = _Handler(container_id, self._lookup, _Forwarder(upstreams))
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(handler),
                                                     sock=udp_sock)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = await handler.answer(await reader.readexactly(size))
                    if reply is None:
                        break
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, OSError):
                pass
            finally:
                writer.close()

        tcp = await asyncio.start_server(on_tcp, sock=tcp_sock)
        self._served[container_id] = _Served(udp, tcp)

    async def stop(self, container_id: str) -> None:
        served = self._served.pop(container_id, None)
        if served is None:
            return
        served.udp.close()
        served.tcp.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(served.tcp.wait_closed(), 1)

    async def stop_all(self) -> None:
        for container_id in list(self._served):
            await self.stop(container_id)


def upstream_servers(resolv_conf: str) -> list[str]:
    """The host's name servers, in order."""
    servers = []
    for line in resolv_conf.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
    return servers
