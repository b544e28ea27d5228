"""client_protocol_version is honoured in Native results: block info before every block, DateTime columns
with their zone (clickhouse-connect asks with 54405 and reads zone-aware values), the custom-serialization
byte from 54454 on, byte for byte as a ClickHouse server writes them, compressed (compress=1) or not."""

from __future__ import annotations

import http.client
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import lz4.block
import pandas as pd
import pytest
from clickhouse_cityhash.cityhash import CityHash128
from clickhouse_connect.driver.client import Client

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded

BERLIN = ZoneInfo("Europe/Berlin")
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
NOON_BERLIN = int(datetime(2024, 6, 1, 10, tzinfo=UTC).timestamp())  # 12:00 in Berlin (summer time)
ONE_ROW = "SELECT toDateTime('2024-06-01 12:00:00', 'Europe/Berlin') AS d, 'x' AS s"


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    with start_embedded(module_server_dir / "chdb", log_path=module_server_dir / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: EmbeddedWarehouse) -> Client:
    return connect(server.url)


@pytest.fixture(scope="module")
def table(client: Client) -> Iterator[str]:
    """Zoned DateTime columns after columns whose data has to be walked to reach them."""
    name = f"zones_{uuid.uuid4().hex[:8]}"
    client.command(
        f"""CREATE TABLE {name} (
            id UInt32,
            label String,
            tag LowCardinality(String),
            maybe_tag LowCardinality(Nullable(String)),
            tokyo Nullable(DateTime('Asia/Tokyo')),
            stamps Array(DateTime('America/New_York')),
            attributes Map(String, Array(UInt8)),
            pair Tuple(name String, at DateTime64(3, 'Asia/Kolkata')),
            berlin DateTime('Europe/Berlin'),
            plain DateTime
        ) ENGINE = MergeTree ORDER BY id"""
    )
    client.command(
        f"""INSERT INTO {name} VALUES
            (1, 'first', 'a', NULL, '2024-06-01 19:00:00', ['2024-06-01 06:00:00'], {{'k': [1, 2]}},
             ('p', '2024-06-01 10:00:00.250'), '2024-06-01 12:00:00', '2024-06-01 10:00:00'),
            (2, 'second', 'b', 'z', NULL, [], {{}}, ('q', '2024-06-01 10:00:00'), '2024-01-15 12:00:00',
             '2024-01-15 11:00:00')"""
    )
    yield name
    client.command(f"DROP TABLE {name}")


def post(server: EmbeddedWarehouse, sql: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    assert server.logins is not None
    login = {"X-ClickHouse-User": server.logins.admin.user, "X-ClickHouse-Key": server.logins.admin.password}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request("POST", "/?" + urlencode(params), body=sql.encode(), headers=login)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def unblock(data: bytes) -> bytes:
    """A compress=1 body: LZ4 blocks, each checksum (CityHash128) checked."""
    out, at = [], 0
    while at < len(data):
        method, size, plain_size = struct.unpack_from("<BII", data, at + 16)
        assert method == 0x82
        block = data[at + 16 : at + 16 + size]
        digest = CityHash128(block)
        assert struct.pack("<QQ", digest >> 64, digest & ((1 << 64) - 1)) == data[at : at + 16]
        out.append(lz4.block.decompress(block[9:], uncompressed_size=plain_size))
        at += 16 + size
    return b"".join(out)


def string(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 0x80
    return bytes([len(data)]) + data


def one_row_block(date_type: str, flag: bytes = b"") -> bytes:
    return (
        b"\x02\x01"
        + string("d")
        + string(date_type)
        + flag
        + struct.pack("<I", NOON_BERLIN)
        + string("s")
        + string("String")
        + flag
        + string("x")
    )


def test_clickhouse_connect_negotiates_the_revision_it_asks_for(client: Client) -> None:
    # Its probe reads the block info of `SELECT 1 AS check` at the revision it sends; without it, it
    # falls back to revision 0 and sends none.
    assert client.protocol_version == 54405


def test_a_berlin_noon_comes_back_as_a_berlin_noon(client: Client) -> None:
    value = client.query(ONE_ROW).result_rows[0][0]
    assert value == datetime(2024, 6, 1, 12, tzinfo=BERLIN)
    assert value.hour == 12 and value.utcoffset() is not None
    assert str(value.tzinfo) == "Europe/Berlin"


def test_a_data_frame_keeps_the_zone(client: Client) -> None:
    frame = client.query_df(ONE_ROW)
    assert isinstance(frame["d"].dtype, pd.DatetimeTZDtype)
    assert str(frame["d"].dtype.tz) == "Europe/Berlin"
    assert frame["d"][0] == pd.Timestamp("2024-06-01 12:00:00", tz="Europe/Berlin")
    assert frame["d"][0].hour == 12


def test_every_column_kind_around_zoned_ones_reads_right(client: Client, table: str) -> None:
    rows = client.query(f"SELECT * FROM {table} ORDER BY id").result_rows
    first, second = rows
    assert first[:4] == (1, "first", "a", None)
    assert first[4] == datetime(2024, 6, 1, 19, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert first[5] == [datetime(2024, 6, 1, 6, tzinfo=ZoneInfo("America/New_York"))]
    assert first[6] == {"k": [1, 2]}
    assert first[7] == {
        "name": "p",
        "at": datetime(2024, 6, 1, 10, 0, 0, 250000, tzinfo=ZoneInfo("Asia/Kolkata")),
    }
    assert first[8] == datetime(2024, 6, 1, 12, tzinfo=BERLIN) and first[8].hour == 12
    assert str(first[8].tzinfo) == "Europe/Berlin"
    assert first[9] == datetime(2024, 6, 1, 10)  # no zone in its type: the server's (UTC), naive
    assert second[:5] == (2, "second", "b", "z", None)
    assert second[5] == [] and second[6] == {}
    assert second[8] == datetime(2024, 1, 15, 12, tzinfo=BERLIN) and second[8].hour == 12
    frame = client.query_df(f"SELECT tag, maybe_tag, berlin FROM {table} ORDER BY id")
    assert list(frame["tag"]) == ["a", "b"]
    assert str(frame["berlin"].dtype.tz) == "Europe/Berlin"
    assert [stamp.hour for stamp in frame["berlin"]] == [12, 12]


def test_a_streamed_result_has_its_zone_in_every_block(client: Client) -> None:
    sql = (
        "SELECT toString(number) AS label, toDateTime(1717236000 + number, 'Europe/Berlin') AS at "
        "FROM numbers(200000) SETTINGS max_block_size = 7000"
    )
    seen = blocks = 0
    with client.query_column_block_stream(sql) as stream:
        for labels, stamps in stream:
            blocks += 1
            assert all(stamp.tzinfo is not None and str(stamp.tzinfo) == "Europe/Berlin" for stamp in stamps)
            assert stamps[0] == datetime.fromtimestamp(1717236000 + int(labels[0]), BERLIN)
            seen += len(labels)
    assert seen == 200000 and blocks > 1
    frame = client.query_df(sql)
    assert str(frame["at"].dtype.tz) == "Europe/Berlin" and frame["at"][0].hour == 12


def test_native_bytes_at_each_revision(server: EmbeddedWarehouse) -> None:
    native = ONE_ROW + " FORMAT Native"
    # No revision: as chDB (and a server) write it for revision 0.
    assert post(server, native)[2] == one_row_block("DateTime")
    assert post(server, native, client_protocol_version="54405")[2] == BLOCK_INFO + one_row_block(
        "DateTime('Europe/Berlin')"
    )
    # Before zones in type names: block info, a plain DateTime.
    assert post(server, native, client_protocol_version="54336")[2] == BLOCK_INFO + one_row_block("DateTime")
    # From custom serialization on: a 0 byte after each type (the data is dense).
    assert post(server, native, client_protocol_version="54454")[2] == BLOCK_INFO + one_row_block(
        "DateTime('Europe/Berlin')", b"\x00"
    )
    # Other formats are not touched.
    status, _, body = post(server, ONE_ROW + " FORMAT TSV", client_protocol_version="54405")
    assert (status, body) == (200, b"2024-06-01 12:00:00\tx\n")


def test_native_bytes_compressed_as_the_jdbc_driver_reads_them(server: EmbeddedWarehouse) -> None:
    status, _, body = post(server, ONE_ROW + " FORMAT Native", client_protocol_version="54405", compress="1")
    assert status == 200
    assert unblock(body) == BLOCK_INFO + one_row_block("DateTime('Europe/Berlin')")


def test_every_streamed_block_gets_its_block_info(server: EmbeddedWarehouse) -> None:
    sql = (
        "SELECT toString(number) AS s, toDateTime(number, 'Asia/Tokyo') AS d FROM numbers(30) "
        "SETTINGS max_block_size = 10 FORMAT Native"
    )
    for params in ({}, {"compress": "1"}):
        status, headers, body = post(server, sql, client_protocol_version="54405", **params)
        assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
        data = unblock(body) if params else body
        at = rows = 0
        while at < len(data):
            assert data[at : at + 8] == BLOCK_INFO
            assert data[at + 8] == 2
            count = data[at + 9]
            at += 10
            assert data[at : at + 2] == b"\x01s" and data[at + 2 : at + 9] == string("String")
            at += 9
            for _ in range(count):
                at += 1 + data[at]
            assert data[at : at + 2] == b"\x01d"
            zoned = string("DateTime('Asia/Tokyo')")
            assert data[at + 2 : at + 2 + len(zoned)] == zoned
            at += 2 + len(zoned) + 4 * count
            rows += count
        assert rows == 30


def test_a_revision_before_low_cardinality_is_refused_for_such_a_column(server: EmbeddedWarehouse) -> None:
    status, headers, body = post(
        server, "SELECT toLowCardinality('a') AS tag FORMAT Native", client_protocol_version="54400"
    )
    assert status == 501 and headers["X-ClickHouse-Exception-Code"] == "48"
    assert b"predates LowCardinality" in body and b"'tag'" in body
    status, _, body = post(server, "SELECT 1 AS one FORMAT Native", client_protocol_version="54400")
    assert (status, body) == (200, BLOCK_INFO + b"\x01\x01" + string("one") + string("UInt8") + b"\x01")


def test_a_revision_that_is_not_a_number_is_refused(server: EmbeddedWarehouse) -> None:
    status, headers, body = post(server, "SELECT 1 FORMAT Native", client_protocol_version="new")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "36"
    assert b"client_protocol_version" in body


def test_a_zone_this_server_cannot_reach_is_an_error_not_a_silent_loss(server: EmbeddedWarehouse) -> None:
    # An aggregate state's data carries no length: the zoned column after it cannot be reached.
    status, headers, body = post(
        server,
        "SELECT uniqState(number) AS u, toDateTime(0, 'Europe/Berlin') AS d FROM numbers(10) FORMAT Native",
        client_protocol_version="54405",
    )
    assert status == 501 and headers["X-ClickHouse-Exception-Code"] == "48"
    assert b"'u'" in body and b"AggregateFunction(uniq, UInt64)" in body
    # After the last zoned column nothing needs reaching: the state goes out as chDB wrote it.
    status, _, body = post(
        server,
        "SELECT toDateTime(0, 'Europe/Berlin') AS d, uniqState(number) AS u FROM numbers(10) FORMAT Native",
        client_protocol_version="54405",
    )
    assert status == 200
    assert body.startswith(BLOCK_INFO + b"\x02\x01" + string("d") + string("DateTime('Europe/Berlin')"))
    state_column = post(server, "SELECT uniqState(number) AS u FROM numbers(10) FORMAT Native")[2][2:]
    assert body.endswith(state_column)


def test_a_query_with_parameters_settings_and_a_trailing_comment_keeps_its_zone(client: Client) -> None:
    result = client.query(
        "SELECT toDateTime({at:String}, {zone:String}) AS d SETTINGS max_threads = 1 -- the last line",
        parameters={"at": "2024-06-01 12:00:00", "zone": "Europe/Berlin"},
    )
    value = result.result_rows[0][0]
    assert value == datetime(2024, 6, 1, 12, tzinfo=BERLIN) and str(value.tzinfo) == "Europe/Berlin"


def test_the_zone_is_found_whatever_follows_the_format_clause(server: EmbeddedWarehouse) -> None:
    expected = BLOCK_INFO + one_row_block("DateTime('Europe/Berlin')")
    for tail in (
        " FORMAT Native SETTINGS max_threads = 1;",
        "\nFORMAT Native -- a comment",
        " FORMAT Native;",
    ):
        status, _, body = post(server, ONE_ROW + tail, client_protocol_version="54405")
        assert (status, body) == (200, expected), tail
    status, _, body = post(server, ONE_ROW, client_protocol_version="54405", default_format="Native")
    assert (status, body) == (200, expected)


def test_long_strings_before_a_zoned_column_are_walked(client: Client) -> None:
    rows = client.query(
        "SELECT repeat('x', number * 100) AS s, toDateTime('2024-06-01 12:00:00', 'Europe/Berlin') AS d "
        "FROM numbers(400)"
    ).result_rows
    assert [len(text) for text, _ in rows] == [number * 100 for number in range(400)]
    assert all(value.hour == 12 and str(value.tzinfo) == "Europe/Berlin" for _, value in rows)


def test_a_streamed_result_after_use_in_a_session_keeps_its_zone(server: EmbeddedWarehouse) -> None:
    session = connect(server.url)  # clickhouse-connect opens a session of its own
    name = f"zones_{uuid.uuid4().hex[:8]}"
    session.command(f"CREATE DATABASE {name}")
    try:
        session.command(f"USE {name}")
        session.command(
            "CREATE TABLE stamps (label String, at DateTime('Europe/Berlin')) ENGINE = MergeTree ORDER BY label"
        )
        session.command(
            "INSERT INTO stamps SELECT toString(number), toDateTime('2024-06-01 12:00:00', 'Europe/Berlin') "
            "FROM numbers(50000)"
        )
        blocks = 0
        with session.query_column_block_stream(
            "SELECT * FROM stamps SETTINGS max_block_size = 5000"
        ) as stream:
            for _, stamps in stream:
                blocks += 1
                assert all(stamp.hour == 12 and str(stamp.tzinfo) == "Europe/Berlin" for stamp in stamps)
        assert blocks > 1
    finally:
        session.command(f"DROP DATABASE {name}")


def test_external_data_keeps_its_zone_in_a_streamed_result(client: Client) -> None:
    from clickhouse_connect.driver.external import ExternalData

    rows = "\n".join(f"{number}\t2024-06-01 12:00:00" for number in range(20000)).encode()
    data = ExternalData(data=rows, file_name="stamps", structure="id UInt32, at DateTime('Europe/Berlin')")
    blocks = 0
    with client.query_column_block_stream(
        "SELECT id, at FROM stamps WHERE id % 2 = 0 UNION ALL SELECT id, at FROM stamps WHERE id % 2 = 1",
        external_data=data,
    ) as stream:
        for _, stamps in stream:
            blocks += 1
            assert all(stamp.hour == 12 and str(stamp.tzinfo) == "Europe/Berlin" for stamp in stamps)
    assert blocks > 1
