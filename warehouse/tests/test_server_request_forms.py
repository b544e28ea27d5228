"""The ways clients shape a request: X-ClickHouse-* headers, a per-request database inside a session, HEAD and
OPTIONS, bodies that are not UTF-8, and external data (tables sent along with the query)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.external import ExternalData

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    with start_embedded(module_server_dir / "chdb", log_path=module_server_dir / "server.log") as running:
        yield running


@pytest.fixture
def client(server: EmbeddedWarehouse) -> Client:
    return connect(server.url)


def send(
    server: EmbeddedWarehouse,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    assert server.logins is not None
    login = {"X-ClickHouse-User": server.logins.admin.user, "X-ClickHouse-Key": server.logins.admin.password}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            method,
            "/?" + urlencode(params) if params else "/",
            body=body,
            headers={**login, **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_format_database_and_query_id_headers_are_honoured(server: EmbeddedWarehouse) -> None:
    status, headers, body = send(
        server,
        b"SELECT currentDatabase() AS db",
        {
            "X-ClickHouse-Format": "RowBinaryWithNamesAndTypes",
            "X-ClickHouse-Database": "system",
            "X-ClickHouse-Query-Id": "from-a-header",
        },
    )
    assert status == 200, body
    assert headers["X-ClickHouse-Format"] == "RowBinaryWithNamesAndTypes"
    assert headers["X-ClickHouse-Query-Id"] == "from-a-header"
    assert body == b"\x01\x02db\x06String\x06system"


def test_a_database_parameter_does_not_stick_to_the_session(server: EmbeddedWarehouse) -> None:
    session = {"session_id": "db-param-session"}
    assert send(server, b"USE system", **session)[0] == 200
    assert send(server, b"SELECT currentDatabase()", database="default", **session)[2] == b"default\n"
    assert send(server, b"SELECT currentDatabase()", **session)[2] == b"system\n"


def test_head_and_options_are_answered_as_a_server_does(server: EmbeddedWarehouse) -> None:
    status, headers, body = send(server, method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "4", b"")
    status, headers, body = send(server, method="OPTIONS")
    assert status == 204 and body == b""
    assert "POST" in headers["Allow"]


def test_a_query_that_is_not_utf8_runs_with_its_bytes(server: EmbeddedWarehouse) -> None:
    status, _, body = send(server, b"SELECT hex('\xff\xfe\x00')")
    assert (status, body) == (200, b"FFFE00\n")


def test_external_data_is_a_temporary_table_of_the_query(client: Client) -> None:
    data = ExternalData(
        file_name="prices.csv", data=b"gpt,3\nclaude,5\n", fmt="CSV", structure="model String, cents UInt32"
    )
    result = client.query("SELECT model, cents * 2 FROM prices ORDER BY model", external_data=data)
    assert result.result_rows == [("claude", 10), ("gpt", 6)]
    typed = ExternalData(file_name="ids", data=b"1\n2\n3\n", types="UInt64")
    assert client.query("SELECT sum(_1) FROM ids", external_data=typed).result_rows == [(6,)]
    # The table lived for its query only.
    assert client.command("EXISTS TEMPORARY TABLE prices") == 0


def test_external_data_without_a_structure_is_refused(server: EmbeddedWarehouse) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="t"; filename="t"\r\n\r\n1\n\r\n--{boundary}--\r\n'
    ).encode()
    status, headers, text = send(
        server, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, query="SELECT * FROM t"
    )
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "36"
    assert b"send t_structure or t_types" in text
