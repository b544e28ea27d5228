"""The embedded warehouse lets in its two logins only, from clients only, and nothing reaches outside it."""

from __future__ import annotations

import http.client
import json
import stat
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_warehouse import WarehouseSettings, connect
from halton_warehouse.embedded import EmbeddedWarehouse, start_embedded
from halton_warehouse.logins import Login, credentials_path, read_logins
from halton_warehouse.warehouse_cli import main as warehouse_cli


@pytest.fixture(scope="module")
def server(module_server_dir: Path) -> Iterator[EmbeddedWarehouse]:
    root = module_server_dir
    with start_embedded(root / "chdb", log_path=root / "server.log") as running:
        admin = connect(running.url)
        admin.command("CREATE DATABASE IF NOT EXISTS shop ENGINE = Atomic")
        admin.command("CREATE TABLE IF NOT EXISTS shop.orders (n UInt32) ENGINE = MergeTree ORDER BY n")
        admin.insert("shop.orders", [[1], [2], [3]])
        yield running


def admin(server: EmbeddedWarehouse) -> Login:
    assert server.logins is not None
    return server.logins.admin


def reader(server: EmbeddedWarehouse) -> Login:
    assert server.logins is not None
    return server.logins.reader


def login_headers(login: Login) -> dict[str, str]:
    return {"X-ClickHouse-User": login.user, "X-ClickHouse-Key": login.password}


def request(
    server: EmbeddedWarehouse,
    sql: str | bytes = "SELECT 1",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        path = "/?" + urlencode(params) if params else "/"
        body = sql.encode() if isinstance(sql, str) else sql
        connection.request(method, path, body=body, headers=headers if headers is not None else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def as_admin(server: EmbeddedWarehouse, sql: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    return request(server, sql, login_headers(admin(server)), **params)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


# --- logins -------------------------------------------------------------------------------------------


def test_first_start_makes_two_owner_only_logins_that_a_restart_keeps(server_dir: Path) -> None:
    with start_embedded(server_dir / "chdb") as first:
        path = credentials_path(server_dir / "chdb")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        logins = read_logins(server_dir / "chdb")
        assert logins is not None and logins == first.logins
        assert (logins.admin.user, logins.reader.user) == ("halton", "analyst")
        assert len(logins.admin.password) >= 32 and logins.admin.password != logins.reader.password
    with start_embedded(server_dir / "chdb") as again:
        assert again.logins == logins
        assert connect(again.url).command("SELECT 1") == 1


def test_settings_left_unset_log_in_with_the_embedded_admin(server_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("HALTON_CLICKHOUSE_URL", raising=False)
    with start_embedded(server_dir / "warehouse") as running:
        password = running.logins.admin.password
        # A server running on that data dir is found where it listens (its server.json beside the data).
        assert WarehouseSettings(data_dir=server_dir).clickhouse_url.rstrip("/") == running.url.rstrip("/")
    # Stopped: the default port, still with the admin login from the data dir.
    assert (
        WarehouseSettings(data_dir=server_dir).clickhouse_url == f"http://halton:{password}@127.0.0.1:8123/"
    )
    explicit = WarehouseSettings(data_dir=server_dir, clickhouse_url="http://other:1/")
    assert explicit.clickhouse_url == "http://other:1/"


def test_credentials_command_prints_the_logins(server: EmbeddedWarehouse) -> None:
    result = CliRunner().invoke(
        warehouse_cli, ["credentials", "--warehouse-dir", str(server.data_dir), "--reader", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == {
        "reader": {
            "user": "analyst",
            "password": reader(server).password,
            "url": f"http://analyst:{reader(server).password}@127.0.0.1:8123",
        }
    }


def test_credentials_command_without_a_warehouse_says_how_to_make_one(server_dir: Path) -> None:
    result = CliRunner().invoke(warehouse_cli, ["credentials", "--warehouse-dir", str(server_dir)])
    assert result.exit_code == 1
    assert "makes them on its first start" in result.output


@pytest.mark.parametrize(
    "carrier",
    ["basic", "x-clickhouse-headers", "url-parameters"],
)
@pytest.mark.parametrize("role", ["admin", "reader"])
def test_every_credential_carrier_works_for_both_logins(
    server: EmbeddedWarehouse, carrier: str, role: str
) -> None:
    login = admin(server) if role == "admin" else reader(server)
    headers, params = {
        "basic": (basic(login.user, login.password), {}),
        "x-clickhouse-headers": (login_headers(login), {}),
        "url-parameters": ({}, {"user": login.user, "password": login.password}),
    }[carrier]
    assert request(server, "SELECT count() FROM shop.orders", headers, **params)[::2] == (200, b"3\n")


def test_a_request_without_a_login_is_asked_for_one(server: EmbeddedWarehouse) -> None:
    status, headers, body = request(server, "SELECT 1")
    assert status == 401
    assert headers["X-ClickHouse-Exception-Code"] == "194"
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert b"log in as halton or analyst" in body and b"halton-warehouse credentials" in body


@pytest.mark.parametrize(
    "user, password",
    [("halton", "wrong"), ("analyst", "wrong"), ("default", ""), ("analyst", "")],
)
def test_a_wrong_login_is_refused(server: EmbeddedWarehouse, user: str, password: str) -> None:
    status, headers, body = request(server, "SELECT 1", basic(user, password))
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert body.startswith(f"Code: 516. DB::Exception: {user}: Authentication failed".encode())


def test_the_reader_password_does_not_open_the_admin_login(server: EmbeddedWarehouse) -> None:
    assert request(server, "SELECT 1", basic("halton", reader(server).password))[0] == 403
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="halton", password="x")
    assert caught.value.code == 516


def test_ping_needs_no_login(server: EmbeddedWarehouse) -> None:
    assert request(server, b"", method="GET")[::2] == (200, b"Ok.\n")


# --- web pages and other host names ------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:8000"])
def test_a_request_from_a_web_page_is_refused_even_with_a_login(
    server: EmbeddedWarehouse, origin: str
) -> None:
    headers = {**login_headers(admin(server)), "Origin": origin}
    status, response_headers, body = request(
        server, "CREATE TABLE shop.from_page (x UInt8) ENGINE = Memory", headers
    )
    assert (status, response_headers["X-ClickHouse-Exception-Code"]) == (403, "497")
    assert b"Requests from web pages are refused" in body
    assert as_admin(server, "EXISTS TABLE shop.from_page")[2] == b"0\n"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8123", "127.0.0.1.nip.io", ""])
def test_a_request_under_another_host_name_is_refused(server: EmbeddedWarehouse, host: str) -> None:
    # What a DNS-rebinding page sends: our address, its own name.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/", skip_host=True)
    connection.putheader("Host", host)
    for name, value in login_headers(admin(server)).items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", "8")
    connection.endheaders(b"SELECT 1")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 403
    assert b"does not answer to the host name" in body


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_host_names_are_answered(server: EmbeddedWarehouse, host: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/", skip_host=True)
    connection.putheader("Host", f"{host}:{server.port}")
    for name, value in login_headers(reader(server)).items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", "8")
    connection.endheaders(b"SELECT 1")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"1\n")
    connection.close()


# --- nothing reaches outside the data directory ------------------------------------------------------

OUTSIDE = {
    "file table function": "SELECT * FROM file('{secret}', 'LineAsString')",
    "file scalar function": "SELECT file('{secret}')",
    "url into a listener": "INSERT INTO FUNCTION url('http://127.0.0.1:9/x', 'CSV', 'a String') SELECT 'a'",
    "url table function": "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')",
    "s3": "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv', 'CSV')",
    "remote": "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "mysql": "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')",
    "postgresql": "SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')",
    "executable": "SELECT * FROM executable('id', 'TabSeparated', 'x String')",
    "input": "SELECT * FROM input('a String')",
    "chDB's Python frames": "SELECT * FROM Python(params)",
    "a quoted name": "SELECT * FROM \"file\"('{secret}', 'LineAsString')",
    "an escaped quoted name": "SELECT * FROM `fi\\x6ce`('{secret}', 'LineAsString')",
    "a comment before the bracket": "SELECT * FROM file/* hidden */('{secret}', 'LineAsString')",
    "a quote hidden in a heredoc": "SELECT $$'$$, file('{secret}') --'",
    "upper case": "SELECT * FROM FILE('{secret}', 'LineAsString')",
    "file engine": "CREATE TABLE shop.f (s String) ENGINE = File(LineAsString)",
    "url engine": "CREATE TABLE shop.u (s String) ENGINE = URL('http://127.0.0.1:9/', CSV)",
    "filesystem database": "CREATE DATABASE fs ENGINE = Filesystem",
    "a dictionary over http": (
        "CREATE DICTIONARY shop.d (k UInt64, v String) PRIMARY KEY k "
        "SOURCE(HTTP(url 'http://127.0.0.1:9/' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)"
    ),
    "a disk of its own": (
        "CREATE TABLE shop.dk (n UInt8) ENGINE = MergeTree ORDER BY n "
        "SETTINGS disk = disk(type = local, path = '/tmp/halton-escape/')"
    ),
    "into outfile": "SELECT 1 INTO OUTFILE '/tmp/halton-escape.tsv'",
    "from infile": "INSERT INTO shop.orders FROM INFILE '/etc/hostname' FORMAT CSV",
    "backup": "BACKUP TABLE shop.orders TO File('/tmp/halton-escape')",
    "system shutdown": "SYSTEM SHUTDOWN",
    "a template file setting": "SELECT 1 SETTINGS format_schema = '/etc/hostname'",
    "expressions in Values data": "INSERT INTO shop.orders FORMAT Values (length(file('{secret}')))",
}


@pytest.mark.parametrize("sql", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_nothing_reaches_files_programs_or_the_network(server: EmbeddedWarehouse, sql: str) -> None:
    secret = credentials_path(server.data_dir)
    status, headers, body = as_admin(server, sql.format(secret=secret))
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "497"), body
    assert b"Not allowed on the embedded warehouse" in body
    assert secret.read_text().split('"password": "')[1][:20].encode() not in body
    assert request(server, b"", method="GET", headers={})[0] == 200  # still serving
    assert as_admin(server, "SELECT count() FROM shop.orders")[2] == b"3\n"


def test_a_setting_that_names_a_file_is_refused_as_a_url_parameter(server: EmbeddedWarehouse) -> None:
    status, _, body = as_admin(server, "SELECT 1", format_template_row="/etc/hostname")
    assert status == 403 and b"format_template_row names a file" in body


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT 'file(' AS s -- url('x')", b"file(\n"),
        ("SELECT 1 /* INTO OUTFILE 'x' */", b"1\n"),
        ("SELECT `file` FROM (SELECT 7 AS `file`)", b"7\n"),
        ("SELECT domain('https://example.com/file(x)')", b"example.com\n"),
        ("SELECT count() FROM numbers(5)", b"5\n"),
        ("SELECT $$file('/etc/hostname')$$", b"file(\\'/etc/hostname\\')\n"),  # TSV escapes quotes
    ],
)
def test_names_inside_strings_comments_and_columns_are_fine(
    server: EmbeddedWarehouse, sql: str, expected: bytes
) -> None:
    assert as_admin(server, sql)[::2] == (200, expected)


# --- the reader login ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE shop.r (x UInt8) ENGINE = Memory",
        "INSERT INTO shop.orders VALUES (9)",
        "INSERT INTO shop.orders FORMAT CSV\n9\n",
        "DROP TABLE shop.orders",
        "ALTER TABLE shop.orders DELETE WHERE 1",
        "TRUNCATE TABLE shop.orders",
        "RENAME TABLE shop.orders TO shop.gone",
        "OPTIMIZE TABLE shop.orders FINAL",
        "SYSTEM FLUSH LOGS",
    ],
)
def test_the_reader_cannot_write(server: EmbeddedWarehouse, sql: str) -> None:
    status, headers, body = request(server, sql, login_headers(reader(server)))
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "497"), body
    assert b"not allowed for the read-only login" in body
    assert as_admin(server, "SELECT count() FROM shop.orders")[2] == b"3\n"


def test_a_second_statement_hidden_behind_a_heredoc_is_refused(server: EmbeddedWarehouse) -> None:
    # Read as a string from the first quote, the `;` would hide; read as ClickHouse does, it ends a statement.
    sql = "SELECT $$'$$; DROP TABLE shop.orders --'"
    status, _, body = request(server, sql, login_headers(reader(server)))
    assert status == 400 and b"Multi-statements are not allowed" in body
    assert as_admin(server, "SELECT count() FROM shop.orders")[2] == b"3\n"


def test_the_reader_reads_with_clickhouse_connect_and_cannot_lift_its_limit(
    server: EmbeddedWarehouse,
) -> None:
    client = connect(server.reader_url)
    assert client.query("SELECT n FROM shop.orders ORDER BY n").result_rows == [(1,), (2,), (3,)]
    with pytest.raises(DatabaseError, match=r"READONLY|readonly"):
        client.command("SET readonly = 0")
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        client.command("CREATE TABLE shop.lifted (x UInt8) ENGINE = Memory")


def test_the_reader_cannot_borrow_a_session_the_admin_opened(server: EmbeddedWarehouse) -> None:
    session = {"session_id": "shared-name"}
    assert as_admin(server, "CREATE TEMPORARY TABLE scratch (x UInt8)", **session)[0] == 200
    assert as_admin(server, "EXISTS TEMPORARY TABLE scratch", **session)[2] == b"1\n"
    as_reader = request(server, "EXISTS TEMPORARY TABLE scratch", login_headers(reader(server)), **session)
    assert as_reader[::2] == (200, b"0\n")


def test_current_user_tells_the_two_logins_apart(server: EmbeddedWarehouse) -> None:
    assert server.logins is not None
    sql = "SELECT currentUser(), user( ), CURRENT_USER(), 'currentUser()' AS text, `user` FROM (SELECT 1 AS user)"
    assert as_admin(server, sql)[2] == b"halton\thalton\thalton\tcurrentUser()\t1\n"
    status, _, body = request(server, sql, login_headers(reader(server)))
    assert (status, body) == (200, b"analyst\tanalyst\tanalyst\tcurrentUser()\t1\n")
    assert connect(server.reader_url).command("SELECT currentUser()") == server.logins.reader.user
