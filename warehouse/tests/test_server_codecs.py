"""Request bodies decode as they stream, frame after frame; responses compress as clients ask."""

from __future__ import annotations

import gzip
import zlib

import brotli
import lz4.frame
import pytest
import zstandard

from halton_warehouse.server.content_codecs import ResponseEncoder, body_decoder, choose_response_encoding
from halton_warehouse.server.wire_errors import ClickHouseError

COMPRESS = {
    "lz4": lz4.frame.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}
DECOMPRESS = {
    "lz4": lz4.frame.decompress,
    # A streamed frame does not state its size up front: decompress it as clients do, as a stream.
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
}


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
@pytest.mark.parametrize("split", [1, 7, 4096])
def test_many_frames_cut_anywhere(encoding: str, split: int) -> None:
    blocks = [bytes(range(256)) * 40 + str(i).encode() for i in range(5)]
    body = b"".join(COMPRESS[encoding](block) for block in blocks)
    decoder = body_decoder(encoding)
    out = b"".join(decoder.feed(body[i : i + split]) for i in range(0, len(body), split)) + decoder.finish()
    assert out == b"".join(blocks)


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_truncated_or_corrupt_bodies_fail_with_cannot_decompress(encoding: str) -> None:
    body = COMPRESS[encoding](b"x" * 10_000)
    with pytest.raises(ClickHouseError) as caught:
        decoder = body_decoder(encoding)
        decoder.feed(body[: len(body) // 2])
        decoder.finish()
    assert caught.value.code == 271
    with pytest.raises(ClickHouseError):
        decoder = body_decoder(encoding)
        decoder.feed(b"\x00\x01 not compressed at all")
        decoder.finish()


def test_unknown_content_encoding_is_refused() -> None:
    with pytest.raises(ClickHouseError, match="Unknown Content-Encoding"):
        body_decoder("snappy")


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_responses_compress_as_asked(encoding: str) -> None:
    assert choose_response_encoding(f"identity, {encoding};q=0.9, gzip") == encoding
    assert (
        DECOMPRESS[encoding](_encode(encoding, [b"abc" * 1000, b"", memoryview(b"xyz" * 500)]))
        == b"abc" * 1000 + b"xyz" * 500
    )


def test_no_acceptable_encoding_means_plain() -> None:
    assert choose_response_encoding(None) is None
    assert choose_response_encoding("identity, snappy") is None


def _encode(encoding: str, pieces: list[bytes | memoryview]) -> bytes:
    encoder = ResponseEncoder(encoding)
    return b"".join(encoder.compress(piece) for piece in pieces) + encoder.finish()
