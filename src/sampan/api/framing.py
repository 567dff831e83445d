"""Byte formats on the wire: stdcopy frames, HTTP chunks, and the detach-key matcher."""

from __future__ import annotations

import struct

from sampan import errdefs

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def stdcopy_frame(stream: int, data: bytes) -> bytes:
    """moby pkg/stdcopy: ``[stream, 0, 0, 0, len uint32 BE] + data``."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (``Transfer-Encoding: chunked``)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def parse_detach_keys(spec: str) -> bytes:
    """Docker's detach-key syntax: comma-separated ``ctrl-<x>`` or single characters
    (``ctrl-p,ctrl-q`` -> ``b"\\x10\\x11"``). ctrl-@ is 0, ctrl-a..z 1..26, ctrl-[ 27,
    ctrl-\\\\ 28, ctrl-] 29, ctrl-^ 30, ctrl-_ 31."""
    keys = bytearray()
    for part in spec.split(","):
        if len(part) == 1:
            keys.append(ord(part))
            continue
        low = part.lower()
        if low.startswith("ctrl-") and len(part) == 6:
            char = low[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
                continue
            special = "@[\\]^_"
            if char in special:
                keys.append(special.index(char) + (0 if char == "@" else 26))
                continue
        raise errdefs.InvalidParameter(f"invalid detach keys ({spec}) provided")
    if not keys:
        raise errdefs.InvalidParameter(f"invalid detach keys ({spec}) provided")
    return bytes(keys)


class DetachKeyMatcher:
    """Watches client input for the detach sequence. Bytes that could start the sequence
    are held back until it is clear they do not complete it (as Docker's escapeProxy)."""

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns (bytes to pass on, detach requested)."""
        out = bytearray()
        for byte in data:
            for candidate in (self._held + bytes([byte]), bytes([byte])):
                if self._keys.startswith(candidate):
                    if candidate == self._keys:
                        self._held = b""
                        return bytes(out), True
                    self._held = candidate
                    break
                if len(candidate) > 1:
                    out += self._held
                    self._held = b""
            else:
                out.append(byte)
        return bytes(out), False

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held
