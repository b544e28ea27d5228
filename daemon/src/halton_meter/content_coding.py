"""Incremental decoders for HTTP ``Content-Encoding``, so parsers read text while clients get raw bytes.

The proxy forwards every response chunk exactly as the provider sent it (possibly gzip- or
brotli-compressed); only the copy handed to the usage parser is decoded, chunk by chunk, without
buffering the whole body.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli  # a mitmproxy dependency
import zstandard  # a mitmproxy dependency


class Decoder(Protocol):
    def decode(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class UnsupportedEncoding(ValueError):
    """A Content-Encoding we cannot decode; the call is still recorded, without usage."""


class _Identity:
    def decode(self, chunk: bytes) -> bytes:
        return chunk

    def flush(self) -> bytes:
        return b""


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    def decode(self, chunk: bytes) -> bytes:
        return self._d.decompress(chunk)

    def flush(self) -> bytes:
        return self._d.flush()


class _Deflate:
    """``deflate`` is zlib-wrapped per the RFC, but some servers send raw deflate: try both."""

    def __init__(self) -> None:
        self._d: zlib._Decompress | None = None
        self._first = b""

    def decode(self, chunk: bytes) -> bytes:
        if self._d is None:
            self._first += chunk
            if len(self._first) < 2:
                return b""
            try:
                self._d = zlib.decompressobj(zlib.MAX_WBITS)
                out = self._d.decompress(self._first)
            except zlib.error:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(self._first)
            self._first = b""
            return out
        return self._d.decompress(chunk)

    def flush(self) -> bytes:
        return self._d.flush() if self._d else b""


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decode(self, chunk: bytes) -> bytes:
        return self._d.process(chunk)

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()

    def decode(self, chunk: bytes) -> bytes:
        return self._d.decompress(chunk)

    def flush(self) -> bytes:
        return b""


class _Chain:
    """``Content-Encoding: gzip, br`` was applied left to right, so undo it right to left."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._decoders = decoders

    def decode(self, chunk: bytes) -> bytes:
        for d in self._decoders:
            chunk = d.decode(chunk)
        return chunk

    def flush(self) -> bytes:
        out = b""
        for d in self._decoders:
            out = (d.decode(out) if out else b"") + d.flush()
        return out


def decoder_for(content_encoding: str | None) -> Decoder:
    """A decoder for a ``Content-Encoding`` header value (``None``/empty = identity)."""
    names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
    names = [n for n in names if n != "identity"]
    if not names:
        return _Identity()
    decoders: list[Decoder] = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            decoders.append(_Zlib(zlib.MAX_WBITS | 16))
        elif name == "deflate":
            decoders.append(_Deflate())
        elif name == "br":
            decoders.append(_Brotli())
        elif name == "zstd":
            decoders.append(_Zstd())
        else:
            raise UnsupportedEncoding(name)
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)
