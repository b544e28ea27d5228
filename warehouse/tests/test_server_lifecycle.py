"""Starting, stopping and restarting the embedded server: nothing acknowledged is lost, clear errors otherwise."""

from __future__ import annotations

import http.client
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, EmbeddedWarehouseError, start_embedded


def admin_headers(server: EmbeddedWarehouse) -> dict[str, str]:
    assert server.logins is not None
    return {"X-ClickHouse-User": server.logins.admin.user, "X-ClickHouse-Key": server.logins.admin.password}


def count_rows(url: str, table: str) -> int:
    return connect(url).command(f"SELECT count() FROM {table}")


def test_sigterm_keeps_acknowledged_and_in_flight_inserts(server_dir: Path) -> None:
    data_dir = server_dir / "chdb"
    server = start_embedded(data_dir, log_path=server_dir / "server.log")
    try:
        client = connect(server.url)
        client.command("CREATE DATABASE keep ENGINE = Atomic")
        client.command("CREATE TABLE keep.calls (n UInt32) ENGINE = MergeTree ORDER BY n")
        assert client.insert("keep.calls", [[1], [2], [3]]).written_rows == 3

        # An insert whose body is still arriving when SIGTERM lands must finish and be acknowledged.
        def slow_body() -> Iterator[bytes]:
            yield b"INSERT INTO keep.calls FORMAT CSV\n4\n"
            server.process.send_signal(signal.SIGTERM)
            # Until the server says it waits for this very request: it is stopping while the body is open.
            deadline = time.monotonic() + 60
            while "waiting for 1 request(s) in flight" not in (server_dir / "server.log").read_text():
                assert time.monotonic() < deadline, "the server never waited for the open insert"
                time.sleep(0.05)
            yield b"5\n6\n"

        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("POST", "/", body=slow_body(), encode_chunked=True, headers=admin_headers(server))
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        assert server.process.wait(15) == 0
    finally:
        server.stop()

    with start_embedded(data_dir, log_path=server_dir / "server.log") as restarted:
        assert count_rows(restarted.url, "keep.calls") == 6
    log = (server_dir / "server.log").read_text()
    assert "waiting for 1 request(s) in flight to finish" in log
    assert "warehouse server stopped" in log


def test_a_second_server_on_the_same_directory_fails_clearly(server_dir: Path) -> None:
    with start_embedded(server_dir / "chdb") as first:
        with pytest.raises(EmbeddedWarehouseError) as caught:
            start_embedded(server_dir / "chdb", timeout=20)
        message = str(caught.value)
        assert "exited with code" in message
        assert "cannot open the chDB data directory" in message
        assert first.process.poll() is None


def test_stop_is_clean_and_idempotent(server_dir: Path) -> None:
    server = start_embedded(server_dir / "chdb")
    assert server.address == f"http://127.0.0.1:{server.port}" and server.pid > 0
    assert server.stop() == 0
    assert server.stop() == 0


def test_other_programs_find_the_running_server_on_whatever_port_it_got(server_dir: Path) -> None:
    """`halton-cloud up --warehouse-port 0` (or any port but 8123): `halton-dbt` and friends, given only the
    data dir, reach that server with its admin login; once it stops they no longer point at it."""
    from halton_warehouse import WarehouseSettings
    from halton_warehouse.running import running_address

    data_dir = server_dir / "cloud"
    with start_embedded(data_dir / "warehouse", log_path=server_dir / "server.log") as server:
        assert running_address(data_dir / "warehouse") == server.address
        found = WarehouseSettings(data_dir=data_dir)
        assert found.clickhouse_url == f"{server.url}/"
        client = connect(found.clickhouse_url)
        try:
            assert client.query("SELECT 1").result_rows == [(1,)]
        finally:
            client.close()
    assert running_address(data_dir / "warehouse") is None
    assert ":8123" in WarehouseSettings(data_dir=data_dir).clickhouse_url
