import bz2
import gzip
import io
import lzma
import os

import pytest
import zstandard

from sampan import errdefs
from sampan.drivers.graph.images.compression import Compression, decompressed

DATA = os.urandom(2048) * 300


@pytest.mark.parametrize(
    ("compress", "kind"),
    [
        (lambda d: d, Compression.NONE),
        (gzip.compress, Compression.GZIP),
        (lambda d: zstandard.ZstdCompressor().compress(d), Compression.ZSTD),
        (bz2.compress, Compression.BZIP2),
        (lzma.compress, Compression.XZ),
    ],
)
def test_compression_is_detected_from_magic_and_undone(compress, kind) -> None:  # type: ignore[no-untyped-def]
    reader, found = decompressed(io.BytesIO(compress(DATA)), "test")
    assert found is kind
    assert reader.read() == DATA


def test_concatenated_gzip_members_and_zero_padding_are_accepted() -> None:
    payload = gzip.compress(DATA) + gzip.compress(b"tail") + b"\0" * 512
    reader, _ = decompressed(io.BytesIO(payload), "test")
    assert reader.read() == DATA + b"tail"


@pytest.mark.parametrize(
    "compress", [gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d)]
)
def test_truncated_streams_are_invalid_parameters(compress) -> None:  # type: ignore[no-untyped-def]
    payload = compress(DATA)
    reader, _ = decompressed(io.BytesIO(payload[: len(payload) // 2]), "layer x")
    with pytest.raises(errdefs.InvalidParameter, match="layer x"):
        reader.read()


def test_corrupt_gzip_is_an_invalid_parameter() -> None:
    payload = bytearray(gzip.compress(DATA))
    payload[200:260] = b"\xff" * 60
    reader, _ = decompressed(io.BytesIO(bytes(payload)), "layer y")
    with pytest.raises(errdefs.InvalidParameter, match="layer y"):
        reader.read()
