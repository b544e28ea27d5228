"""connect(url): server URLs, the in-process engine, and clear errors for the rest."""

from __future__ import annotations

import pytest

from halton_warehouse import connect
from halton_warehouse.warehouse_client import WarehouseURLError
from halton_warehouse.warehouse_settings import WarehouseSettings


def test_http_url_reaches_the_embedded_server(warehouse_server: str) -> None:
    assert connect(warehouse_server).query("SELECT 1 + 1").result_rows == [(2,)]


def test_http_url_with_database_and_settings(warehouse, warehouse_server: str) -> None:
    client = connect(f"{warehouse_server}/{warehouse.databases.raw}?max_threads=1")
    assert client.query("SELECT currentDatabase()").result_rows == [(warehouse.databases.raw,)]


def test_chdb_url_opens_the_engine_in_process(tmp_path) -> None:
    client = connect(f"chdb://{tmp_path}/engine")
    assert client.query("SELECT toDecimal64(1.5, 9) * 2").result_rows[0][0] == __import__("decimal").Decimal(
        "3"
    )


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgres://x/y", "unsupported warehouse URL scheme"),
        ("http:///nohost", "no host"),
        ("chdb://", "data path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(WarehouseURLError, match=message):
        connect(url)


def test_password_is_redacted_in_errors() -> None:
    with pytest.raises(WarehouseURLError) as caught:
        connect("ftp://user:s3cret@host/db")
    assert "s3cret" not in str(caught.value)


def test_settings_read_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("HALTON_CLICKHOUSE_URL", "https://u:p@ch.example.com:8443/halton")
    monkeypatch.setenv("HALTON_CLICKHOUSE_CLUSTER", "main")
    settings = WarehouseSettings()
    assert settings.clickhouse_url == "https://u:p@ch.example.com:8443/halton"
    assert settings.clickhouse_cluster == "main"
    assert settings.databases.raw == "raw"
