"""The embedded warehouse server answers clickhouse-connect (and raw HTTP) the way a ClickHouse server does."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    root = module_server_dir
    with start_embedded(root / "chdb", log_path=root / "server.log") as running:
        yield running


@pytest.fixture
def client(server: EmbeddedWarehouse) -> Client:
    return connect(server.url)


@pytest.fixture
def database(client: Client) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    client.command(f"CREATE DATABASE {name} ENGINE = Atomic")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def post(
    server: EmbeddedWarehouse,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request with the admin login; returns status, headers and body."""
    assert server.logins is not None
    login = {"X-ClickHouse-User": server.logins.admin.user, "X-ClickHouse-Key": server.logins.admin.password}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        path = "/?" + urlencode(params) if params else "/"
        connection.request(
            method,
            path,
            body=body.encode() if isinstance(body, str) else body,
            headers={**login, **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


CALLS_TABLE = """
CREATE TABLE {db}.calls (
    id UUID,
    started_at DateTime64(3, 'UTC'),
    cost Decimal(18, 9),
    provider LowCardinality(String),
    project Nullable(String),
    tags Array(String),
    tokens Map(String, UInt64)
) ENGINE = MergeTree ORDER BY (provider, started_at, id)
"""


def test_ping_and_empty_get_answer_ok(server: EmbeddedWarehouse) -> None:
    assert post(server, method="GET")[2] == b"Ok.\n"
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    connection.request("GET", "/ping")
    assert connection.getresponse().read() == b"Ok.\n"


def test_client_sees_a_clickhouse_server_in_utc(client: Client) -> None:
    assert client.server_version.startswith("26.")
    assert client.command("SELECT timezone()") == "UTC"
    assert client.command("SELECT getSetting('date_time_input_format')") == "best_effort"


def test_types_round_trip(client: Client, database: str) -> None:
    client.command(CALLS_TABLE.format(db=database))
    rows = [
        [
            uuid.uuid4(),
            dt.datetime(2026, 11, 22, 9, 30, 1, 123000),
            Decimal("0.000000001"),
            "anthropic",
            None,
            ["a", "b"],
            {"input": 10, "output": 3},
        ],
        [uuid.uuid4(), dt.datetime(2026, 1, 1), Decimal("123456789.123456789"), "openai", "halton", [], {}],
    ]
    client.insert(f"{database}.calls", rows)
    back = client.query(f"SELECT * FROM {database}.calls ORDER BY provider").result_rows
    assert [list(row) for row in back] == rows


def test_query_df_and_query_arrow(client: Client, database: str) -> None:
    client.command(CALLS_TABLE.format(db=database))
    client.insert(
        f"{database}.calls",
        [[uuid.uuid4(), dt.datetime(2026, 5, 1), Decimal("1.5"), "gemini", "p", ["x"], {"input": 1}]],
    )
    frame = client.query_df(f"SELECT provider, cost, tags FROM {database}.calls")
    assert list(frame.columns) == ["provider", "cost", "tags"]
    assert frame["provider"].tolist() == ["gemini"]
    assert frame["cost"].tolist() == [Decimal("1.5")]
    table = client.query_arrow(f"SELECT id, started_at, cost FROM {database}.calls")
    assert table.num_rows == 1
    assert str(table.schema.field("cost").type) == "decimal128(18, 9)"
    assert table.schema.field("started_at").type.unit == "ms"


def test_server_side_bind_parameters(client: Client, server: EmbeddedWarehouse) -> None:
    result = client.query(
        "SELECT {name:String} AS name, {n:UInt32} + 1 AS n, {at:DateTime64(3)} AS at",
        parameters={"name": "tab\there 'quoted'", "n": 41, "at": dt.datetime(2026, 11, 22, 1, 2, 3, 456000)},
    )
    assert result.result_rows == [("tab\there 'quoted'", 42, dt.datetime(2026, 11, 22, 1, 2, 3, 456000))]
    # A long parameter makes clickhouse-connect send a multipart form instead of URL parameters.
    long_text = "x" * 20000
    assert client.query("SELECT length({t:String})", parameters={"t": long_text}).result_rows == [(20000,)]
    status, _, body = post(server, "SELECT {a:Int8} * 2", param_a="21")
    assert (status, body) == (200, b"42\n")


def test_hundred_thousand_row_insert(client: Client, database: str) -> None:
    client.command(
        f"CREATE TABLE {database}.wide (id UInt64, at DateTime64(3, 'UTC'), note String) "
        "ENGINE = MergeTree ORDER BY id"
    )
    start = dt.datetime(2026, 1, 1)
    ids = list(range(100_000))
    summary = client.insert(
        f"{database}.wide",
        [ids, [start + dt.timedelta(seconds=i) for i in ids], [f"note {i}" for i in ids]],
        column_names=["id", "at", "note"],
        column_oriented=True,
    )
    assert summary.written_rows == 100_000
    assert client.query(f"SELECT count(), sum(id), uniqExact(note) FROM {database}.wide").result_rows == [
        (100_000, sum(ids), 100_000)
    ]


def test_a_second_process_reads_what_the_first_wrote(
    client: Client, database: str, server: EmbeddedWarehouse
) -> None:
    client.command(f"CREATE TABLE {database}.shared (k String, v UInt8) ENGINE = MergeTree ORDER BY k")
    client.insert(f"{database}.shared", [["written-by-test", 7]])
    reader = (
        "from halton_warehouse import connect\n"
        f"c = connect({server.url!r})\n"
        f"print(c.query('SELECT k, v FROM {database}.shared').result_rows)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[('written-by-test', 7)]"


def test_eight_concurrent_clients_insert_and_select(
    server: EmbeddedWarehouse, database: str, client: Client
) -> None:
    client.command(
        f"CREATE TABLE {database}.events (worker UInt8, n UInt32) ENGINE = MergeTree ORDER BY (worker, n)"
    )
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            own = connect(server.url)
            for batch in range(10):
                own.insert(f"{database}.events", [[worker, batch * 100 + i] for i in range(100)])
                count = own.command(f"SELECT count() FROM {database}.events WHERE worker = {worker}")
                assert count == (batch + 1) * 100
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert client.command(f"SELECT count() FROM {database}.events") == 8000


def test_bad_sql_answers_clickhouse_error_shape(server: EmbeddedWarehouse, client: Client) -> None:
    status, headers, body = post(server, "SELEC 1")
    assert status == 400
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    text = body.decode()
    assert text.startswith("Code: 62. DB::Exception: Syntax error")
    assert "(SYNTAX_ERROR) (version 26." in text and text.endswith(")\n")

    status, headers, body = post(server, "")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62") and b"Empty query" in body

    status, headers, body = post(server, "SELECT 1; SELECT 2")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62") and b"Multi-statements" in body

    status, headers, body = post(server, "SELECT * FROM no_such_db.t")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "81")
    assert b"(UNKNOWN_DATABASE)" in body

    with pytest.raises(DatabaseError) as caught:
        client.query("SELECT nope FROM system.one")
    assert caught.value.code == 47
    assert "UNKNOWN_IDENTIFIER" in str(caught.value)


def test_insert_select_from_input_is_refused_not_silently_dropped(server: EmbeddedWarehouse) -> None:
    # chDB would run it as a plain statement whose input() reads nothing and answer 200 with 0 rows.
    sql = "INSERT INTO system.null SELECT * FROM input('a UInt8') FORMAT JSONEachRow\n{\"a\": 1}\n"
    status, headers, body = post(server, sql)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (501, "48")
    assert b"input() is not supported by the embedded warehouse" in body


def test_session_temporary_table_is_invisible_to_another_session(server: EmbeddedWarehouse) -> None:
    first = connect(server.url)
    second = connect(server.url)
    first.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    first.command("INSERT INTO scratch VALUES (1), (2)")
    assert first.command("SELECT count() FROM scratch") == 2
    with pytest.raises(DatabaseError) as caught:
        second.command("SELECT count() FROM scratch")
    assert caught.value.code == 60


def test_set_persists_within_a_session_only(server: EmbeddedWarehouse) -> None:
    session = connect(server.url)
    other = connect(server.url)
    session.command("SET max_threads = 1")
    assert session.command("SELECT getSetting('max_threads')") == 1
    assert other.command("SELECT getSetting('max_threads')") != 1
    # Without a session, a SET must not leak into the next request's connection.
    post(server, "SET max_threads = 1")
    assert post(server, "SELECT getSetting('max_threads')")[2] != b"1\n"


def test_session_check_and_timeout(server: EmbeddedWarehouse) -> None:
    status, headers, _ = post(server, "SELECT 1", session_id="never-opened", session_check="1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "372")
    # A long timeout while the session is checked (a busy machine may take seconds between two requests),
    # then each request sets it to 1 s, as ClickHouse lets the latest request choose.
    assert post(server, "SET max_threads = 3", session_id="short", session_timeout="60")[0] == 200
    assert (
        post(
            server,
            "SELECT getSetting('max_threads')",
            session_id="short",
            session_check="1",
            session_timeout="1",
        )[2]
        == b"3\n"
    )
    # Idle past its 1 s timeout the sweeper (every 1 s) closes it. Asking again keeps it alive, so each
    # ask leaves it idle for 2.5 s (a sweep falls in that window unless the machine stalls, and then
    # the next window); the deadline is for a server whose sweeper never runs.
    deadline = time.monotonic() + 120
    while True:
        time.sleep(2.5)
        status, headers, _ = post(
            server, "SELECT 1", session_id="short", session_check="1", session_timeout="1"
        )
        if headers.get("X-ClickHouse-Exception-Code") == "372":
            break
        assert status == 200 and time.monotonic() < deadline, "the idle session was never closed"
    status, headers, _ = post(server, "SELECT 1", session_id="x", session_timeout="99999")
    assert headers["X-ClickHouse-Exception-Code"] == "374"


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip"])
def test_compressed_insert_and_response(server: EmbeddedWarehouse, database: str, compression: str) -> None:
    client = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=server.port,
        username=server.logins.admin.user,
        password=server.logins.admin.password,
        compress=compression,
    )
    client.command(f"CREATE TABLE {database}.c (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    data = [[i, f"row {i}"] for i in range(30_000)]
    client.insert(f"{database}.c", data)
    assert client.query(f"SELECT count(), sum(n) FROM {database}.c").result_rows == [
        (30_000, sum(range(30_000)))
    ]
    status, headers, _ = post(
        server,
        f"SELECT * FROM {database}.c",
        headers={"Accept-Encoding": compression},
        enable_http_compression="1",
    )
    assert status == 200 and headers["Content-Encoding"] == compression


def _frames(encoding: str, pieces: list[bytes]) -> bytes:
    """Each piece compressed on its own, one frame after another, as clickhouse-connect sends blocks."""
    import gzip
    import zlib

    import brotli
    import lz4.frame
    import zstandard

    compress = {
        "lz4": lz4.frame.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
    }[encoding]
    return b"".join(compress(piece) for piece in pieces)


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate", "br"])
def test_multi_frame_request_bodies(
    server: EmbeddedWarehouse, client: Client, database: str, encoding: str
) -> None:
    client.command(f"CREATE TABLE {database}.m (n UInt32) ENGINE = MergeTree ORDER BY n")
    pieces = [f"INSERT INTO {database}.m FORMAT CSV\n".encode()] + [
        "".join(f"{i}\n" for i in range(start, start + 1000)).encode() for start in range(0, 5000, 1000)
    ]
    status, _, body = post(server, _frames(encoding, pieces), headers={"Content-Encoding": encoding})
    assert status == 200, body
    assert client.query(f"SELECT count(), sum(n) FROM {database}.m").result_rows == [(5000, sum(range(5000)))]
    status, headers, body = post(server, b"\x00garbage", headers={"Content-Encoding": encoding})
    assert headers.get("X-ClickHouse-Exception-Code") == "271", (status, body)


def test_insert_formats_clients_send(server: EmbeddedWarehouse, client: Client, database: str) -> None:
    client.command(f"CREATE TABLE {database}.f (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    table = f"{database}.f"
    client.raw_insert(table, ["n", "s"], b"1,one\n", fmt="CSV")
    client.raw_insert(table, ["n", "s"], "2\ttwo\n", fmt="TSV")
    client.raw_insert(table, ["n", "s"], b'{"n": 3, "s": "three"}\n', fmt="JSONEachRow")
    client.raw_insert(table, ["n", "s"], (4).to_bytes(4, "little") + b"\x04four", fmt="RowBinary")
    # The statement in the URL and the data in the body, as curl users do.
    assert post(server, b"5,five\n", query=f"INSERT INTO {table} FORMAT CSV")[0] == 200
    # Statement and data in one body, with the data on the same line.
    assert post(server, f'INSERT INTO {table} FORMAT JSONEachRow {{"n": 6, "s": "six"}}')[0] == 200
    assert post(server, f"INSERT INTO {table} VALUES (7, 'seven')")[0] == 200
    rows = client.query(f"SELECT n, s FROM {table} ORDER BY n").result_rows
    assert rows == [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five"), (6, "six"), (7, "seven")]


def test_response_headers_like_a_server(server: EmbeddedWarehouse) -> None:
    status, headers, body = post(server, "SELECT 1 AS one", query_id="my-query-1")
    assert status == 200 and body == b"1\n"
    assert headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"] == "UTC"
    assert headers["X-ClickHouse-Server-Display-Name"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["read_rows"] == "1" and all(isinstance(v, str) for v in summary.values())

    status, headers, body = post(server, "CREATE TEMPORARY TABLE h (x UInt8)")
    assert status == 200 and body == b"" and "X-ClickHouse-Format" not in headers

    _, headers, body = post(server, "SELECT 1 AS one", default_format="JSONEachRow")
    assert (headers["X-ClickHouse-Format"], body) == ("JSONEachRow", b'{"one":1}\n')
    _, headers, body = post(server, "SELECT 1 AS one FORMAT CSVWithNames", default_format="JSONEachRow")
    assert (headers["X-ClickHouse-Format"], body) == ("CSVWithNames", b'"one"\n1\n')


def test_database_parameter_and_get_is_readonly(server: EmbeddedWarehouse, database: str) -> None:
    assert post(server, "SELECT currentDatabase()", database=database)[2] == f"{database}\n".encode()
    assert post(server, "SELECT currentDatabase()")[2] == b"default\n"
    status, headers, _ = post(
        server, method="GET", query=f"CREATE TABLE {database}.g (x UInt8) ENGINE = Memory"
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert post(server, method="GET", query="SELECT 2")[2] == b"2\n"


def test_unknown_setting_is_refused_and_known_one_applies(server: EmbeddedWarehouse) -> None:
    status, headers, _ = post(server, "SELECT 1", no_such_setting_at_all="1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")
    assert post(server, "SELECT getSetting('max_block_size')", max_block_size="1234")[2] == b"1234\n"
    assert post(server, "SELECT getSetting('max_block_size')")[2] != b"1234\n"
    # readonly cannot be SET back on a connection: it must not reach the next request.
    status, headers, _ = post(server, "CREATE TEMPORARY TABLE ro (x UInt8)", readonly="1")
    assert headers.get("X-ClickHouse-Exception-Code") == "164"
    for _ in range(3):
        assert post(server, "CREATE TEMPORARY TABLE rw (x UInt8)")[0] == 200


def test_small_parts_are_one_file_and_large_ones_keep_their_columns(client: Client, database: str) -> None:
    from halton_warehouse.server.engine import PACKED_PART_BYTES

    client.command(
        f"CREATE TABLE {database}.p (id UInt64, note String) ENGINE = MergeTree ORDER BY id"
        " SETTINGS min_bytes_for_wide_part = 0"  # so the large part's files are per column
    )
    client.command(f"INSERT INTO {database}.p SELECT number, 'small' FROM numbers(1000)")
    client.command(
        f"INSERT INTO {database}.p SELECT number, repeat('x', 100) FROM numbers({PACKED_PART_BYTES // 100})"
    )
    parts = client.query(
        "SELECT rows, part_storage_type, path FROM system.parts"
        f" WHERE database = '{database}' AND table = 'p' AND active ORDER BY rows"
    ).result_rows
    assert [(rows, storage) for rows, storage, _ in parts] == [
        (1000, "Packed"),
        (PACKED_PART_BYTES // 100, "Full"),
    ]
    small, large = (Path(path) for _, _, path in parts)
    assert [entry.name for entry in small.iterdir()] == ["data.packed"]
    assert {"id.bin", "note.bin"} <= {entry.name for entry in large.iterdir()}
    assert client.command(f"SELECT count() FROM {database}.p WHERE note = 'small'") == 1000


def test_insert_from_a_data_frame_and_from_arrow(client: Client, database: str) -> None:
    import pandas as pd
    import pyarrow as pa

    client.command(
        f"CREATE TABLE {database}.frames (id UInt32, model String, cost Float64) ENGINE = MergeTree ORDER BY id"
    )
    frame = pd.DataFrame({"id": range(50_000), "model": [f"m{i % 5}" for i in range(50_000)], "cost": 0.5})
    assert client.insert_df(f"{database}.frames", frame).written_rows == 50_000
    table = pa.table(
        {
            "id": pa.array(range(50_000, 60_000), pa.uint32()),
            "model": ["arrow"] * 10_000,
            "cost": [1.0] * 10_000,
        }
    )
    assert client.insert_arrow(f"{database}.frames", table).written_rows == 10_000
    assert client.query(
        f"SELECT count(), uniqExact(model), sum(cost) FROM {database}.frames"
    ).result_rows == [(60_000, 6, 35_000.0)]
    back = client.query_arrow(f"SELECT id FROM {database}.frames WHERE model = 'arrow' ORDER BY id")
    assert back.column("id").to_pylist() == list(range(50_000, 60_000))
