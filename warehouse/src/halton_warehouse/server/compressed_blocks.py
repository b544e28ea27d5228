"""ClickHouse's own compressed-block format over HTTP: `compress=1` responses, `decompress=1` request bodies.

The JDBC driver (DBeaver's) asks for it on every request. Each block is

    16 bytes  CityHash128 (v1.0.2) of the 9-byte header and the compressed data, as two little-endian
              64-bit halves
     1 byte   method: 0x82 LZ4, 0x90 ZSTD, 0x02 none
     4 bytes  size of header + compressed data, little-endian
     4 bytes  size of the data once decompressed, little-endian
     …        the compressed data (an LZ4 *block*, not a frame)

The server writes LZ4 blocks of at most 1 MiB of data (ClickHouse's max_compress_block_size) and reads any
of the three methods, refusing a block whose checksum does not match as ClickHouse does (code 40).
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from halton_warehouse.server.content_codecs import BodyDecoder
from halton_warehouse.server.wire_errors import CANNOT_DECOMPRESS, ClickHouseError

CHECKSUM_DOESNT_MATCH = 40
TOO_LARGE_SIZE_COMPRESSED = 246
MAX_BLOCK_DATA = 1 << 20  # data per written block
_MAX_BLOCK_READ = 1 << 30  # ClickHouse's own limit on a compressed block it reads
_LZ4, _ZSTD, _NONE = 0x82, 0x90, 0x02
_HEADER = struct.Struct("<BII")
_MASK64 = (1 << 64) - 1


def checksum(block: bytes) -> bytes:
    digest = CityHash128(block)
    return struct.pack("<QQ", digest >> 64, digest & _MASK64)


def compress_block(data: bytes | memoryview) -> bytes:
    """One LZ4 block of `data` (at most MAX_BLOCK_DATA of it), with its checksum."""
    packed = lz4.block.compress(data, store_size=False)
    block = _HEADER.pack(_LZ4, _HEADER.size + len(packed), len(data)) + packed
    return checksum(block) + block


class BlockEncoder:
    """Response compression for compress=1: no Content-Encoding, the body is a run of blocks."""

    encoding = None

    def compress(self, data: bytes | memoryview) -> bytes:
        view = memoryview(data)
        return b"".join(
            compress_block(view[start : start + MAX_BLOCK_DATA])
            for start in range(0, len(view), MAX_BLOCK_DATA)
        )

    def finish(self) -> bytes:
        return b""


class BlockDecoder(BodyDecoder):
    """Request bodies for decompress=1: blocks decompressed (checksums verified) as their bytes arrive."""

    def __init__(self, inner: BodyDecoder) -> None:
        self._inner = inner  # the Content-Encoding under the blocks, if any
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        self._pending += self._inner.feed(data)
        return self._take_blocks()

    def finish(self) -> bytes:
        self._pending += self._inner.finish()
        out = self._take_blocks()
        if self._pending:
            raise ClickHouseError(
                CANNOT_DECOMPRESS,
                f"Cannot decompress: the body ended inside a compressed block ({len(self._pending)} bytes left)",
            )
        return out

    def _take_blocks(self) -> bytes:
        out = []
        while len(self._pending) >= 16 + _HEADER.size:
            method, size, data_size = _HEADER.unpack_from(self._pending, 16)
            if size < _HEADER.size or size > _MAX_BLOCK_READ or data_size > _MAX_BLOCK_READ:
                raise ClickHouseError(
                    TOO_LARGE_SIZE_COMPRESSED,
                    f"Too large size_compressed_without_checksum: {size}. Most likely corrupted data",
                    name="TOO_LARGE_SIZE_COMPRESSED",
                )
            if len(self._pending) < 16 + size:
                break
            block = bytes(self._pending[16 : 16 + size])
            expected = bytes(self._pending[:16])
            del self._pending[: 16 + size]
            actual = checksum(block)
            if actual != expected:
                raise ClickHouseError(
                    CHECKSUM_DOESNT_MATCH,
                    "Checksum doesn't match: corrupted data. Reference: "
                    f"{_halves(expected)}. Actual: {_halves(actual)}. Size of compressed block: {size}",
                    name="CHECKSUM_DOESNT_MATCH",
                )
            out.append(_decompress(method, block[_HEADER.size :], data_size))
        return b"".join(out)


def _decompress(method: int, payload: bytes, data_size: int) -> bytes:
    try:
        if method == _LZ4:
            data = lz4.block.decompress(payload, uncompressed_size=data_size)
        elif method == _ZSTD:
            data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=data_size)
        elif method == _NONE:
            data = payload
        else:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Unknown compression method: {method:#04x}")
    except (lz4.block.LZ4BlockError, zstandard.ZstdError) as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress a compressed block: {exc}") from None
    if len(data) != data_size:
        raise ClickHouseError(
            CANNOT_DECOMPRESS,
            f"Cannot decompress: the block gave {len(data)} bytes, its header says {data_size}",
        )
    return data


def _halves(digest: bytes) -> str:
    first, second = struct.unpack("<QQ", digest)
    return f"0x{first:016X}, 0x{second:016X}"
