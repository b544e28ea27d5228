"""ClickHouse's compressed-block format, tested with the requests the JDBC driver (DBeaver's) sends.

The driver (clickhouse-java 0.10, client-v2 HttpAPIClientHelper) cannot be installed here, so its requests are
replayed as its source builds them: POST /?compress=1 (COMPRESS_SERVER_RESPONSE defaults to true), the SQL as a
text/plain body, `X-ClickHouse-Format: RowBinaryWithNamesAndTypes` for queries, `X-ClickHouse-Database`,
HTTP Basic credentials, and `decompress=1` with an LZ4-block body when client compression is on. A prepared
batch insert is one request whose body is `INSERT INTO t (…) VALUES (…),(…),…` (PreparedStatementImpl).
The blocks are read and written here by a separate implementation that follows the format's description.
"""

from __future__ import annotations

import base64
import http.client
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import lz4.block
import pytest
from clickhouse_cityhash.cityhash import CityHash128

from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    with start_embedded(module_server_dir / "chdb", log_path=module_server_dir / "server.log") as running:
        yield running


@pytest.fixture
def database(server: EmbeddedWarehouse) -> Iterator[str]:
    name = f"jdbc_{uuid.uuid4().hex[:8]}"
    assert jdbc(server, f"CREATE DATABASE {name}", compress="0")[0] == 200
    yield name
    jdbc(server, f"DROP DATABASE {name}", compress="0")


def jdbc(
    server: EmbeddedWarehouse,
    body: str | bytes,
    fmt: str | None = "RowBinaryWithNamesAndTypes",
    database: str = "default",
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    """One request as the JDBC driver builds it (compress=1 unless overridden)."""
    assert server.logins is not None
    login = f"{server.logins.admin.user}:{server.logins.admin.password}".encode()
    headers = {
        "Content-Type": "text/plain",
        "X-ClickHouse-Database": database,
        "Authorization": "Basic " + base64.b64encode(login).decode(),
        "User-Agent": "clickhouse-java-v2/0.10.0 (Linux; jvm:21) Apache-HttpClient/5.4",
    }
    if fmt:
        headers["X-ClickHouse-Format"] = fmt
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request(
            "POST",
            "/?" + urlencode({"compress": "1", **params}),
            body=body.encode() if isinstance(body, str) else body,
            headers=headers,
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def checksum(block: bytes) -> bytes:
    digest = CityHash128(block)
    return struct.pack("<QQ", digest >> 64, digest & ((1 << 64) - 1))


def blocks(data: bytes, size: int = 1000) -> bytes:
    """`data` as LZ4 blocks of `size` bytes each, as the driver's LZ4Entity writes them."""
    out = []
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        packed = lz4.block.compress(piece, store_size=False)
        block = struct.pack("<BII", 0x82, 9 + len(packed), len(piece)) + packed
        out.append(checksum(block) + block)
    return b"".join(out)


def unblock(data: bytes) -> bytes:
    """A compress=1 body read as the driver's ClickHouseLZ4InputStream reads it, checksums checked."""
    out, at = [], 0
    while at < len(data):
        method, size, plain_size = struct.unpack_from("<BII", data, at + 16)
        assert method == 0x82
        block = data[at + 16 : at + 16 + size]
        assert checksum(block) == data[at : at + 16], "checksum mismatch"
        out.append(lz4.block.decompress(block[9:], uncompressed_size=plain_size))
        at += 16 + size
    return b"".join(out)


def test_a_jdbc_query_gets_lz4_blocks_of_its_format(server: EmbeddedWarehouse) -> None:
    sql = "SELECT number AS n, toString(number) AS s FROM numbers(100000)"
    status, headers, body = jdbc(server, sql)
    assert status == 200 and headers["X-ClickHouse-Format"] == "RowBinaryWithNamesAndTypes"
    assert "Content-Encoding" not in headers
    plain = jdbc(server, sql, compress="0")[2]
    assert plain.startswith(b"\x02\x01n\x01s\x06UInt64\x06String")
    assert unblock(body) == plain
    assert len(body) < len(plain)


def test_a_jdbc_batch_insert_and_its_count(server: EmbeddedWarehouse, database: str) -> None:
    create = f"CREATE TABLE {database}.t (id UInt32, name String, at DateTime('Europe/Berlin')) ENGINE = MergeTree ORDER BY id"
    status, _, body = jdbc(server, create)
    assert status == 200 and unblock(body) == b""
    values = ",".join(f"({i},'name {i}','2026-06-01 12:00:00')" for i in range(10_000))
    status, headers, body = jdbc(server, f"INSERT INTO {database}.t (id, name, at) VALUES {values}")
    assert status == 200, unblock(body)
    assert '"written_rows":"10000"' in headers["X-ClickHouse-Summary"]
    counted = unblock(jdbc(server, f"SELECT count(), sum(id) FROM {database}.t", fmt="TabSeparated")[2])
    assert counted == f"10000\t{sum(range(10_000))}\n".encode()
    # The database header applies: an unqualified name finds the table.
    local = jdbc(server, "SELECT toString(at) FROM t LIMIT 1", fmt="TabSeparated", database=database)
    assert unblock(local[2]) == b"2026-06-01 12:00:00\n"


def test_a_compressed_request_body_is_read_block_by_block(server: EmbeddedWarehouse, database: str) -> None:
    jdbc(server, f"CREATE TABLE {database}.c (id UInt32, s String) ENGINE = Memory", compress="0")
    data = "".join(f"{i}\tvalue {i}\n" for i in range(50_000))
    body = blocks(f"INSERT INTO {database}.c FORMAT TabSeparated\n{data}".encode(), size=4096)
    status, _, answer = jdbc(server, body, fmt=None, decompress="1")
    assert status == 200, unblock(answer)
    assert jdbc(server, f"SELECT count() FROM {database}.c", fmt=None, compress="0")[2] == b"50000\n"


def test_a_corrupted_block_is_refused_with_clickhouses_error(server: EmbeddedWarehouse) -> None:
    body = bytearray(blocks(b"SELECT 1"))
    body[-1] ^= 0x01
    status, headers, answer = jdbc(server, bytes(body), fmt=None, decompress="1", compress="0")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "40"
    assert answer.startswith(
        b"Code: 40. DB::Exception: Checksum doesn't match: corrupted data. Reference: 0x"
    )
    assert b"(CHECKSUM_DOESNT_MATCH)" in answer


def test_an_error_is_compressed_like_the_result_would_be(server: EmbeddedWarehouse) -> None:
    status, headers, body = jdbc(server, "SELECT no_such_column")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "47"
    assert unblock(body).startswith(b"Code: 47. DB::Exception:")


def test_a_wrong_login_is_answered_plain_even_with_compress(server: EmbeddedWarehouse) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/?compress=1", body=b"SELECT 1", headers={"X-ClickHouse-User": "nobody"})
        response = connection.getresponse()
        assert response.status == 403 and response.read().startswith(b"Code: 516.")
    finally:
        connection.close()
