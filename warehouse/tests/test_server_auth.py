"""A server started with --user/--password accepts the ways clients authenticate and refuses the rest."""

from __future__ import annotations

import http.client
from base64 import b64encode
from collections.abc import Iterator
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded

USER, PASSWORD = "halton", "s3cret pass"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedWarehouse]:
    root = tmp_path_factory.mktemp("auth")
    with start_embedded(root / "chdb", user=USER, password=PASSWORD, log_path=root / "server.log") as running:
        yield running


def request(
    server: EmbeddedWarehouse, headers: dict[str, str], **params: str
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/?" + urlencode(params), body=b"SELECT 1", headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def test_clickhouse_connect_with_the_right_password(server: EmbeddedWarehouse) -> None:
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username=USER, password=PASSWORD
    )
    assert client.command("SELECT 40 + 2") == 42


@pytest.mark.parametrize(
    "headers, params",
    [
        (basic(USER, PASSWORD), {}),
        ({"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD}, {}),
        ({}, {"user": USER, "password": PASSWORD}),
    ],
    ids=["basic", "x-clickhouse-headers", "url-parameters"],
)
def test_every_credential_carrier_is_accepted(
    server: EmbeddedWarehouse, headers: dict[str, str], params: dict[str, str]
) -> None:
    assert request(server, headers, **params)[::2] == (200, b"1\n")


def test_wrong_password_is_authentication_failed(server: EmbeddedWarehouse) -> None:
    status, headers, body = request(server, basic(USER, "wrong"))
    assert status == 403  # ClickHouse's exceptionCodeToHTTPStatus for AUTHENTICATION_FAILED
    assert headers["X-ClickHouse-Exception-Code"] == "516"
    assert body.startswith(b"Code: 516. DB::Exception: halton: Authentication failed")
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username=USER, password="wrong")
    assert caught.value.code == 516


def test_no_credentials_asks_for_them(server: EmbeddedWarehouse) -> None:
    status, headers, body = request(server, {})
    assert status == 401
    assert headers["X-ClickHouse-Exception-Code"] == "194"
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert b"(REQUIRED_PASSWORD)" in body


def test_ping_needs_no_credentials(server: EmbeddedWarehouse) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/ping")
    assert connection.getresponse().read() == b"Ok.\n"
