"""Layer and archive compression: detection by magic number, decompressing readers.

Docker detects compression from the first bytes, not from file names or media types, and so
do we: gzip ``1f 8b``, zstd ``28 b5 2f fd``, bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``; anything
else is read as-is (an uncompressed tar). Decoder failures (a truncated gzip, a corrupt zstd
frame) surface as ``errdefs.InvalidParameter`` naming what was being read. ``zstandard`` is
imported only when a zstd stream is met.
"""

from __future__ import annotations

import bz2
import enum
import hashlib
import io
import lzma
import zlib
from typing import Any, BinaryIO, cast

from sampan import errdefs

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
}


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


def detect(head: bytes) -> Compression:
    """The compression of a stream starting with ``head`` (at least 6 bytes, if available)."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return Compression(name)
    return Compression.NONE


class _Peekable(io.RawIOBase):
    """Wraps a stream so its first bytes can be examined and then read again."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class DigestingReader(io.RawIOBase):
    """Passes a stream through while computing its sha256 and length."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        self._hash.update(data)
        self.count += len(data)
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read what the consumer left (tar padding, trailing bytes) so the digest is whole."""
        while self._raw_read_chunk():
            pass

    def _raw_read_chunk(self) -> bool:
        data = self._raw.read(1 << 20)
        self._hash.update(data)
        self.count += len(data)
        return bool(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class _FramedReader(io.RawIOBase):
    """gzip or zstd, several concatenated members/frames allowed; strict about truncation.

    Python's ``gzip`` module and zstandard's stream reader both return a short read on a
    truncated stream without complaint; a layer cut short must be an error instead, so this
    drives the decoder objects directly and checks that the last frame reached its end.
    """

    def __init__(self, raw: BinaryIO, kind: Compression) -> None:
        self._raw = raw
        self._kind = kind
        self._decoder = self._new_decoder()
        self._pending = b""
        self._eof = False
        # zstd's decoder object has no output limit; feeding it small input chunks bounds
        # the memory one read can take (a 4 KiB chunk of RLE blocks inflates to ~170 MiB).
        self._chunk = 1 << 16 if kind is Compression.GZIP else 1 << 12

    def _new_decoder(self) -> Any:
        if self._kind is Compression.GZIP:
            return zlib.decompressobj(wbits=31)
        return _zstd_module().ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._eof:
            self._fill()
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _decode(self, data: bytes) -> bytes:
        if self._kind is Compression.GZIP:
            return self._decoder.decompress(data, 1 << 20)  # type: ignore[no-any-return]
        return self._decoder.decompress(data)  # type: ignore[no-any-return]

    def _fill(self) -> None:
        if self._decoder.eof:
            rest = self._decoder.unused_data or self._raw.read(self._chunk)
            if not rest:
                self._eof = True
                return
            if detect(rest[:6]) is not self._kind and len(rest) >= 4:
                # Go's readers ignore zero padding after the last member (tar blocks).
                if rest.strip(b"\x00") == b"" and not self._raw.read(1 << 16).strip(b"\x00"):
                    self._eof = True
                    return
                raise errdefs.InvalidParameter(f"trailing garbage after {self._kind.value} data")
            self._decoder = self._new_decoder()
            self._pending = self._decode(rest)
            return
        tail = getattr(self._decoder, "unconsumed_tail", b"")
        chunk = tail if tail else self._raw.read(self._chunk)
        if not chunk:
            raise errdefs.InvalidParameter(
                f"unexpected end of {self._kind.value} data (truncated)"
            )
        self._pending = self._decode(chunk)


class _ErrorMapping(io.RawIOBase):
    """Turns decoder exceptions into ``errdefs.InvalidParameter`` naming the stream."""

    def __init__(self, inner: Any, what: str) -> None:
        self._inner = inner
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except errdefs.SampanError as exc:
            raise errdefs.InvalidParameter(f"{self._what}: {exc}") from exc
        except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise errdefs.InvalidParameter(
                f"{self._what}: corrupt or truncated data: {exc}"
            ) from exc
        except Exception as exc:  # zstandard.ZstdError has no common base we can name statically
            if type(exc).__name__ == "ZstdError":
                raise errdefs.InvalidParameter(
                    f"{self._what}: corrupt or truncated zstd data: {exc}"
                ) from exc
            raise
        view = memoryview(buffer).cast("B")
        view[: len(data)] = data
        return len(data)


def _zstd_module() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - a dependency in pyproject
        raise errdefs.Unavailable("zstd layers need the 'zstandard' package") from exc
    return zstandard


def decompressed(stream: BinaryIO, what: str) -> tuple[BinaryIO, Compression]:
    """A reader of the decompressed bytes of ``stream`` and the compression found.

    ``what`` names the stream in error messages (``layer sha256:...``, ``archive``).
    """
    head = _read_head(stream, 6)
    kind = detect(head)
    source = _Peekable(stream, head)
    inner: Any
    if kind is Compression.NONE:
        return cast(BinaryIO, io.BufferedReader(source, 1 << 20)), kind
    if kind in (Compression.GZIP, Compression.ZSTD):
        inner = _FramedReader(source, kind)  # type: ignore[arg-type]
    elif kind is Compression.BZIP2:
        inner = bz2.BZ2File(source)
    else:
        inner = lzma.LZMAFile(cast(BinaryIO, source))  # noqa: SIM115 - returned, closed by caller
    mapped = _ErrorMapping(inner, what)
    return cast(BinaryIO, io.BufferedReader(mapped, 1 << 20)), kind


def _read_head(stream: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head
