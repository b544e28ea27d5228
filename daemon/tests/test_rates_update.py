"""`halton-meter rates update / diff`: from a file and from a URL, refused when invalid, unpriced rows priced."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from halton_meter.catalogue import active_catalogue
from halton_meter.catalogue.installed import installed_path
from halton_meter.cli import main
from halton_meter.reprice import price_history
from halton_meter.testing.catalogues import edited_catalogue, packaged_document

run = CliRunner().invoke  # click 8.2+: stdout and stderr apart, output both
NEW = "2027-01-05+0123456789ab"
NEW_MODEL = ("openai", "gpt-mystery-9", "1", "2")  # $1 / $2 per million tokens
GPT_4O_FROM = ("openai", "gpt-4o", "2027-01-01", "5", "20")


def new_catalogue() -> dict:
    return edited_catalogue(NEW, new_models=[NEW_MODEL], dated_prices=[GPT_4O_FROM])


@pytest.fixture
def catalogue_file(tmp_path: Path) -> Path:
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(new_catalogue()))
    return path


@pytest.fixture
def served() -> Iterator[dict[str, bytes]]:
    """An http server on 127.0.0.1: path -> body."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    files["_base"] = f"http://127.0.0.1:{server.server_address[1]}".encode()
    yield files
    server.shutdown()
    server.server_close()


def test_diff_shows_what_an_update_would_change_and_changes_nothing(home, catalogue_file):
    result = run(main, ["rates", "diff", "--from", str(catalogue_file)])
    assert result.exit_code == 0, result.stderr
    packaged = packaged_document()["version"]
    assert f"catalogue {packaged} -> {NEW}: 1 model added" in result.stdout
    assert "+ openai/gpt-mystery-9" in result.stdout
    assert "~ openai/gpt-4o prices[2027-01-01].rates.input: (none) -> 5, from 2027-01-01" in result.stdout
    assert not installed_path(home.catalogue).exists()
    document = json.loads(run(main, ["rates", "diff", "--from", str(catalogue_file), "--json"]).stdout)
    assert document["added"] == ["openai/gpt-mystery-9"] and document["new_version"] == NEW


def test_update_from_a_file_installs_it_and_prices_the_unpriced_rows(home, seed, catalogue_file):
    unknown = seed(model="gpt-mystery-9", cost=None, unpriced_reason="no price for openai/gpt-mystery-9")
    known = seed(model="gpt-4o", cost="0.0035", when=datetime(2026, 12, 20, tzinfo=UTC))

    result = run(main, ["rates", "update", "--from", str(catalogue_file)])

    assert result.exit_code == 0, result.stderr
    assert f"Installed catalogue {NEW}." in result.stdout and "1 now priced" in result.stdout
    assert active_catalogue(home.catalogue).version == NEW
    conn = sqlite3.connect(home.db)
    conn.row_factory = sqlite3.Row
    costs = dict(conn.execute("SELECT request_uid, cost_nusd FROM requests").fetchall())
    assert costs[str(unknown.request_uid)] == 1_200_000  # 1000 x $1 + 100 x $2 per million
    assert costs[str(known.request_uid)] == 3_500_000  # priced rows are not touched
    (before,) = price_history(conn, str(unknown.request_uid))
    assert before["cost_nusd"] is None and before["unpriced_reason"] == "no price for openai/gpt-mystery-9"
    # The same catalogue again: nothing to do.
    again = run(main, ["rates", "update", "--from", str(catalogue_file), "--json"])
    assert json.loads(again.stdout)["installed"] is False


def test_update_from_a_url(home, seed, served):
    served["/rates.json"] = json.dumps(new_catalogue()).encode()
    url = served["_base"].decode() + "/rates.json"
    result = run(main, ["rates", "update", "--from", url, "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["installed"] and document["diff"]["new_version"] == NEW
    assert active_catalogue(home.catalogue).version == NEW
    missing = run(main, ["rates", "diff", "--from", served["_base"].decode() + "/nothing.json"])
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr


def test_plain_http_is_refused_away_from_this_machine(home):
    result = run(main, ["rates", "diff", "--from", "http://prices.example.com/rates.json"])
    assert result.exit_code == 1 and "use https://" in result.stderr


def test_an_invalid_catalogue_is_refused_naming_the_entry_and_the_old_one_stays(
    home, catalogue_file, tmp_path
):
    assert run(main, ["rates", "update", "--from", str(catalogue_file)]).exit_code == 0
    broken = edited_catalogue("2027-02-01+broken", base=new_catalogue())
    broken["models"][0]["prices"][0]["rates"]["output"] = 2.5  # a JSON number, not a decimal string
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))

    for command in ("diff", "update"):
        result = run(main, ["rates", command, "--from", str(path)])
        assert result.exit_code == 1
        assert "models[0] openai/gpt-mystery-9: prices[0].rates.output" in result.stderr
        assert "The catalogue in force is unchanged." in result.stderr
    assert active_catalogue(home.catalogue).version == NEW


def test_not_paired_and_no_source_says_what_to_do(home):
    result = run(main, ["rates", "update"])
    assert result.exit_code == 1 and "--from FILE_OR_URL" in result.stderr
