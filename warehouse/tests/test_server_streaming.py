"""Results stream as chDB produces them, errors part-way arrive as ClickHouse sends them, progress keeps slow
queries alive, and a query can be stopped: by KILL QUERY with the client's query_id, or by its client leaving."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_warehouse import connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded

DEADLINE = 60.0  # seconds a condition gets to come true on a loaded machine


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    with start_embedded(module_server_dir / "chdb", log_path=module_server_dir / "server.log") as running:
        yield running


@pytest.fixture
def client(server: EmbeddedWarehouse) -> Client:
    return connect(server.url)


def request(
    server: EmbeddedWarehouse, sql: str, **params: str
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    assert server.logins is not None
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    login = {"X-ClickHouse-User": server.logins.admin.user, "X-ClickHouse-Key": server.logins.admin.password}
    connection.request("POST", "/?" + urlencode(params), body=sql.encode(), headers=login)
    return connection.getresponse(), connection


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def running_with_tag(client: Client, query_id: str) -> int:
    return int(
        client.command(
            "SELECT count() FROM system.processes WHERE Settings['log_comment'] = {id:String}",
            parameters={"id": query_id},
        )
    )


def test_a_large_result_streams_in_chunks_and_arrives_whole(server: EmbeddedWarehouse) -> None:
    response, connection = request(server, "SELECT number FROM numbers(3000000)")
    try:
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        total = count = 0
        for line in response:
            total += int(line)
            count += 1
        assert count == 3_000_000 and total == sum(range(3_000_000))
    finally:
        connection.close()


def test_a_small_result_has_its_length_and_a_true_summary(server: EmbeddedWarehouse) -> None:
    response, connection = request(server, "SELECT number FROM numbers(10)")
    try:
        assert response.getheader("Content-Length") == str(len(response.read()))
        summary = response.getheader("X-ClickHouse-Summary")
        assert '"result_rows":"10"' in summary and '"result_bytes":"20"' in summary
    finally:
        connection.close()


def test_wait_end_of_query_gives_the_summary_of_the_whole_result(server: EmbeddedWarehouse) -> None:
    response, connection = request(server, "SELECT number FROM numbers(2000000)", wait_end_of_query="1")
    try:
        assert '"result_rows":"2000000"' in response.getheader("X-ClickHouse-Summary")
        assert response.read().count(b"\n") == 2_000_000
    finally:
        connection.close()


def test_header_only_formats_of_empty_results_keep_their_header(server: EmbeddedWarehouse) -> None:
    response, connection = request(server, "SELECT number FROM numbers(0) FORMAT TSVWithNames")
    try:
        assert response.read() == b"number\n"
    finally:
        connection.close()


FAILS_LATE = "SELECT throwIf(number = 2500000, 'late failure') AS x FROM numbers(3000000)"


def test_an_error_after_the_first_byte_arrives_as_clickhouse_sends_it(server: EmbeddedWarehouse) -> None:
    response, connection = request(server, FAILS_LATE)
    try:
        assert response.status == 200  # the head went out before the engine failed
        tag = response.getheader("X-ClickHouse-Exception-Tag")
        assert tag and len(tag) == 16
        body = response.read()
        assert body.endswith(b" " + tag.encode() + b"\r\n__exception__\r\n")
        opening = body.rindex(b"__exception__\r\n" + tag.encode() + b"\r\n")
        assert b"Code: 395. DB::Exception: late failure" in body[opening:]
        assert response.getheader("Connection", "").lower() != "close" or response.will_close
    finally:
        connection.close()


def test_clickhouse_connect_raises_an_error_that_came_part_way(client: Client) -> None:
    with pytest.raises(DatabaseError, match="late failure"):
        client.query(FAILS_LATE)
    with (
        pytest.raises(DatabaseError, match="late failure"),
        client.query_row_block_stream(FAILS_LATE) as stream,
    ):
        for _ in stream:
            pass
    assert client.command("SELECT 1") == 1  # the client's next request works


def test_clickhouse_connect_streams_rows(client: Client) -> None:
    rows = 0
    with client.query_row_block_stream("SELECT number, toString(number) FROM numbers(1000000)") as stream:
        for block in stream:
            rows += len(block)
    assert rows == 1_000_000
    frame = client.query_df("SELECT number AS n FROM numbers(500000)")
    assert len(frame) == 500_000 and int(frame["n"].sum()) == sum(range(500_000))


def test_progress_headers_while_the_query_runs(server: EmbeddedWarehouse) -> None:
    response, connection = request(
        server,
        "SELECT sum(sleepEachRow(0.1)) FROM numbers(15) SETTINGS max_block_size = 1",
        send_progress_in_http_headers="1",
        http_headers_progress_interval_ms="100",
    )
    try:
        progress = [value for name, value in response.getheaders() if name == "X-ClickHouse-Progress"]
        assert progress, response.getheaders()
        assert '"read_rows"' in progress[-1]
        assert response.read() == b"0\n"
    finally:
        connection.close()


def test_an_error_after_progress_headers_still_carries_its_code(server: EmbeddedWarehouse) -> None:
    response, connection = request(
        server,
        "SELECT sum(throwIf(number = 10, 'slow failure')) FROM numbers(15) "
        "WHERE sleepEachRow(0.1) = 0 SETTINGS max_block_size = 1",
        send_progress_in_http_headers="1",
        http_headers_progress_interval_ms="100",
    )
    try:
        assert response.getheader("X-ClickHouse-Progress")
        assert response.getheader("X-ClickHouse-Exception-Code") == "395"
        assert b"slow failure" in response.read()
    finally:
        connection.close()


def test_a_query_longer_than_the_read_timeout_lives_on_progress_headers(server: EmbeddedWarehouse) -> None:
    # clickhouse-connect asks for progress every max(10 s, timeout - 5 s): with a 14 s read timeout it
    # fails unless a header arrives within each 14 s. This query runs for about 20 s.
    assert server.logins is not None
    client = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=server.port,
        username=server.logins.admin.user,
        password=server.logins.admin.password,
        send_receive_timeout=14,
    )
    result = client.query("SELECT sum(sleepEachRow(0.5)) FROM numbers(40) SETTINGS max_block_size = 1")
    assert result.result_rows == [(0,)]


def test_kill_query_stops_a_query_by_the_client_query_id(client: Client, server: EmbeddedWarehouse) -> None:
    query_id = f"long-{uuid.uuid4().hex[:8]}"
    failure: list[BaseException] = []

    def run() -> None:
        long_client = connect(server.url)
        try:
            long_client.query(
                "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1",
                settings={"query_id": query_id},
            )
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(lambda: running_with_tag(client, query_id) == 1, "the query to start")
    with pytest.raises(DatabaseError, match="QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING"):
        client.query("SELECT 1", settings={"query_id": query_id})
    killed = client.query(f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
    assert len(killed.result_rows) == 1
    runner.join(DEADLINE)
    assert not runner.is_alive()
    assert failure and "QUERY_WAS_CANCELLED" in str(failure[0])


def test_a_client_that_goes_away_stops_its_query(client: Client, server: EmbeddedWarehouse) -> None:
    assert server.logins is not None
    query_id = f"gone-{uuid.uuid4().hex[:8]}"
    params = urlencode(
        {
            "query_id": query_id,
            "send_progress_in_http_headers": "1",
            "http_headers_progress_interval_ms": "50",
        }
    )
    sql = b"SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        sock.sendall(
            f"POST /?{params} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-ClickHouse-User: {server.logins.admin.user}\r\nX-ClickHouse-Key: {server.logins.admin.password}\r\n"
            f"Content-Length: {len(sql)}\r\n\r\n".encode()
            + sql
        )
        received = b""
        while b"X-ClickHouse-Progress" not in received:
            received += sock.recv(4096)
        assert running_with_tag(client, query_id) == 1
    finally:
        sock.close()
    wait_for(lambda: running_with_tag(client, query_id) == 0, "the abandoned query to stop")


def test_a_reader_who_stops_reading_a_stream_stops_its_query(
    client: Client, server: EmbeddedWarehouse
) -> None:
    query_id = f"drop-{uuid.uuid4().hex[:8]}"
    response, connection = request(server, "SELECT number FROM numbers(100000000000)", query_id=query_id)
    assert response.read(1 << 20)
    assert running_with_tag(client, query_id) == 1
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    wait_for(lambda: running_with_tag(client, query_id) == 0, "the streaming query to stop")
