"""Incremental Content-Encoding decoders, fed in small pieces as a stream would arrive."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from halton_meter.content_coding import UnsupportedEncoding, decoder_for

BODY = b'data: {"type":"message_delta","usage":{"output_tokens":15}}\n\n' * 50


def pieces(data: bytes, size: int = 13) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode(encoding: str | None, data: bytes) -> bytes:
    decoder = decoder_for(encoding)
    return b"".join(decoder.decode(p) for p in pieces(data)) + decoder.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-15)),  # raw deflate, as some servers send
        ("br", brotli.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
    ],
)
def test_decodes_in_pieces(encoding, encode):
    assert decode(encoding, encode(BODY)) == BODY


def test_unknown_encoding():
    with pytest.raises(UnsupportedEncoding):
        decoder_for("snappy")
