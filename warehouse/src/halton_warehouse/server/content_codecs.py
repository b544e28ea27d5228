"""Content-Encoding for request bodies (decoded as they stream) and for responses.

clickhouse-connect compresses each insert block on its own, so an lz4, zstd, gzip or brotli body is
a run of independent frames: every decoder here starts a new frame where the previous one ended.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import lz4.frame
import zstandard

from halton_warehouse.server.wire_errors import CANNOT_DECOMPRESS, UNKNOWN_FORMAT, ClickHouseError

try:  # brotli is optional: not a dependency of the warehouse, present when another package brings it
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

# Response encodings we can produce, in the spelling of Accept-Encoding.
RESPONSE_ENCODINGS = ("lz4", "zstd", *(("br",) if brotli else ()), "gzip", "deflate")


class BodyDecoder:
    """Decodes one Content-Encoding incrementally: feed() compressed bytes, get plain bytes back."""

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        """Called at the end of the body: fails if it stopped in the middle of a frame."""
        return b""


class IdentityDecoder(BodyDecoder):
    def feed(self, data: bytes) -> bytes:
        return data


class _FramedDecoder(BodyDecoder):
    """Frames with a decompressor object that reports `eof` and `unused_data` (lz4, zstd, zlib)."""

    def __init__(self, name: str, new_frame: Callable[[], object]) -> None:
        self._name = name
        self._new_frame = new_frame
        self._frame = None

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        try:
            while data:
                if self._frame is None:
                    self._frame = self._new_frame()
                out.append(self._frame.decompress(data))
                if not self._frame.eof:
                    break
                data = self._frame.unused_data
                self._frame = None
        except (RuntimeError, zstandard.ZstdError, zlib.error) as exc:
            raise _corrupt(self._name, exc) from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._frame is not None:
            raise _corrupt(self._name, "the body ended inside a compressed frame")
        return b""


class _BrotliDecoder(BodyDecoder):
    """Brotli streams, one after another. The brotli module does not report where a stream ends, so
    when a chunk holds the end of one stream and the start of the next, the boundary is found by
    replaying the current stream byte by byte (rare: clients send one stream per HTTP chunk)."""

    def __init__(self) -> None:
        self._stream = brotli.Decompressor()
        self._consumed: list[bytes] = []  # compressed bytes of the current stream, for a replay

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._stream.is_finished():
                self._stream = brotli.Decompressor()
                self._consumed = []
            try:
                out.append(self._stream.process(data))
                self._consumed.append(data)
                data = b""
            except brotli.error:
                produced, data = self._replay_to_boundary(data)
                out.append(produced)
        return b"".join(out)

    def _replay_to_boundary(self, data: bytes) -> tuple[bytes, bytes]:
        stream = brotli.Decompressor()
        try:
            for earlier in self._consumed:
                stream.process(earlier)
            produced: list[bytes] = []
            for index in range(len(data)):
                produced.append(stream.process(data[index : index + 1]))
                if stream.is_finished():
                    self._stream = stream
                    return b"".join(produced), data[index + 1 :]
        except brotli.error as exc:
            raise _corrupt("br", exc) from exc
        raise _corrupt("br", "invalid stream")

    def finish(self) -> bytes:
        if self._consumed and not self._stream.is_finished():
            raise _corrupt("br", "the body ended inside a compressed stream")
        return b""


def body_decoder(content_encoding: str | None) -> BodyDecoder:
    """The decoder for a request's Content-Encoding header."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        return IdentityDecoder()
    if encoding == "lz4":
        return _FramedDecoder("lz4", lz4.frame.LZ4FrameDecompressor)
    if encoding == "zstd":
        return _FramedDecoder("zstd", lambda: zstandard.ZstdDecompressor().decompressobj())
    if encoding in ("gzip", "x-gzip"):
        return _FramedDecoder("gzip", lambda: zlib.decompressobj(wbits=31))
    if encoding == "deflate":
        # ClickHouse's "deflate" is the zlib format (RFC 1950), as HTTP defines it.
        return _FramedDecoder("deflate", lambda: zlib.decompressobj(wbits=15))
    if encoding == "br" and brotli is not None:
        return _BrotliDecoder()
    raise ClickHouseError(
        UNKNOWN_FORMAT,
        f"Unknown Content-Encoding {content_encoding!r}: send one of identity, {', '.join(RESPONSE_ENCODINGS)}",
    )


def choose_response_encoding(accept_encoding: str | None) -> str | None:
    """The first encoding in the client's Accept-Encoding list that we can produce."""
    if not accept_encoding:
        return None
    for token in accept_encoding.split(","):
        name = token.split(";", 1)[0].strip().lower()
        if name in RESPONSE_ENCODINGS:
            return name
    return None


class ResponseEncoder:
    """Compresses a response as it streams: one frame of `encoding` (one of RESPONSE_ENCODINGS)."""

    def __init__(self, encoding: str, level: int | None = None) -> None:
        self.encoding = encoding
        if encoding == "lz4":
            self._lz4 = lz4.frame.LZ4FrameCompressor()
            self._pending = self._lz4.begin()
            self._compress, self._finish = self._lz4.compress, self._lz4.flush
        elif encoding == "zstd":
            zstd = zstandard.ZstdCompressor(level=level or 3).compressobj()
            self._pending = b""
            self._compress, self._finish = zstd.compress, zstd.flush
        elif encoding == "br":
            br = brotli.Compressor(quality=level or 4)
            self._pending = b""
            self._compress, self._finish = br.process, br.finish
        elif encoding in ("gzip", "deflate"):
            deflate = zlib.compressobj(level or 3, wbits=31 if encoding == "gzip" else 15)
            self._pending = b""
            self._compress, self._finish = deflate.compress, deflate.flush
        else:
            raise ValueError(f"cannot compress a response as {encoding!r}")

    def compress(self, data: bytes | memoryview) -> bytes:
        out = self._compress(bytes(data) if self.encoding == "br" else data)
        if self._pending:
            out, self._pending = self._pending + out, b""
        return out

    def finish(self) -> bytes:
        return self._pending + self._finish()


def _corrupt(name: str, reason: object) -> ClickHouseError:
    return ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress the {name} request body: {reason}")
