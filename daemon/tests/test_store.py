"""The SQLite store: schema and migrations, durability settings, the batch writer, wire rows."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from halton_meter.health import Health
from halton_meter.protocol import RequestRow
from halton_meter.store import (
    MIGRATIONS,
    BatchWriter,
    StoredCall,
    StoreError,
    connect,
    insert_calls,
    mark_synced,
    migrate,
    open_store,
    rows_to_protocol,
    schema_version,
    transaction,
    unsynced_rows,
)

T0 = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)


def wire_row(**kw) -> RequestRow:
    values = dict(
        request_uid=uuid.uuid4(),
        machine_id="m-1",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=2),
        provider="anthropic",
        model_requested="claude-sonnet-4-5",
        model_served="claude-sonnet-4-5-20250929",
        endpoint="/v1/messages",
        status_code=200,
        streamed=True,
        complete=True,
        service_tier="standard",
        batch=False,
        input_tokens=160,
        output_tokens=45,
        cache_read_tokens=30,
        cache_write_tokens=10,
        cache_write_1h_tokens=0,
        reasoning_tokens=None,
        cost_usd=Decimal("0.001081500"),
        price_card="genai-prices@0.0.61:anthropic/claude-sonnet-4-5",
        project="checkout",
        attribution_tier="api_key",
        prompt_hash="f" * 64,
        provider_request_id="msg_1",
        latency_ms=2000,
        ttfb_ms=350,
    )
    values.update(kw)
    return RequestRow(**values)


def test_migrations_set_the_version_and_are_idempotent(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    assert schema_version(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"requests", "request_bodies", "capture_errors"} <= tables
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"requests_by_time", "requests_by_project", "requests_unsynced"} <= indexes


def test_a_newer_schema_is_refused(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="upgrade halton-meter"):
        migrate(conn)


def test_durability_settings_are_wal_and_synchronous_normal(tmp_path: Path):
    """The documented choice (see store.py): WAL + NORMAL; a process crash loses no committed row."""
    conn = open_store(tmp_path / "db.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    reader = connect(tmp_path / "db.sqlite", readonly=True)
    assert reader.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_every_wire_field_round_trips(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    rows = [
        wire_row(),
        wire_row(region="us", web_search_requests=3),
        wire_row(
            repository="checkout",
            branch="feature/PAY-12-refunds",
            ticket="PAY-12",
            tool="claude-code",
            tool_version="2.0.14",
        ),
        wire_row(
            cost_usd=None,
            price_card=None,
            input_tokens=None,
            cache_read_tokens=None,
            cache_write_tokens=None,
            cache_write_1h_tokens=None,
            output_tokens=None,
            status_code=None,
            complete=False,
            ttfb_ms=None,
        ),
    ]
    with transaction(conn):
        insert_calls(
            conn, [StoredCall(row=r, unpriced_reason="x" if r.cost_usd is None else None) for r in rows]
        )
    back = rows_to_protocol(conn.execute("SELECT * FROM requests ORDER BY rowid"))
    assert back == rows


def test_a_database_of_the_previous_schema_gains_region_and_web_searches_as_null(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    old = wire_row()
    with transaction(conn):
        insert_calls(conn, [StoredCall(row=old)])
    # Back to schema 3, as an older meter left it.
    _drop_limits(conn)
    _drop_origin(conn)
    conn.execute("DROP TABLE request_price_history")
    conn.execute("ALTER TABLE requests DROP COLUMN web_search_requests")
    conn.execute("ALTER TABLE requests DROP COLUMN region")
    conn.execute("PRAGMA user_version = 3")
    assert migrate(conn) == len(MIGRATIONS) == 7
    (back,) = rows_to_protocol(conn.execute("SELECT * FROM requests"))
    assert back == old and back.region is None and back.web_search_requests is None


def _drop_limits(conn) -> None:
    for table in ("spend_limits", "spend_limit_fetch", "limit_overrides", "limit_events"):
        conn.execute(f"DROP TABLE {table}")


def _drop_origin(conn) -> None:
    conn.execute("DROP INDEX requests_by_branch")
    for column in ("repository", "branch", "ticket", "tool", "tool_version"):
        conn.execute(f"ALTER TABLE requests DROP COLUMN {column}")


def test_a_database_of_schema_5_gains_the_call_origin_as_null(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    old = wire_row()
    with transaction(conn):
        insert_calls(conn, [StoredCall(row=old)])
    _drop_limits(conn)
    _drop_origin(conn)
    conn.execute("PRAGMA user_version = 5")
    assert migrate(conn) == 7
    (back,) = rows_to_protocol(conn.execute("SELECT * FROM requests"))
    assert back == old and (back.repository, back.branch, back.ticket, back.tool) == (None, None, None, None)


def test_a_database_of_schema_6_gains_the_hard_limit_tables_empty(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    old = wire_row()
    with transaction(conn):
        insert_calls(conn, [StoredCall(row=old)])
    _drop_limits(conn)
    conn.execute("PRAGMA user_version = 6")
    assert migrate(conn) == 7
    assert rows_to_protocol(conn.execute("SELECT * FROM requests")) == [old]
    for table in ("spend_limits", "spend_limit_fetch", "limit_overrides", "limit_events"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_unsynced_rows_and_mark_synced(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    rows = [
        wire_row(started_at=T0 + timedelta(minutes=i), ended_at=T0 + timedelta(minutes=i, seconds=1))
        for i in range(3)
    ]
    with transaction(conn):
        insert_calls(conn, [StoredCall(row=r) for r in rows])
    assert [r.request_uid for r in unsynced_rows(conn, limit=2)] == [rows[0].request_uid, rows[1].request_uid]
    assert mark_synced(conn, [rows[0].request_uid, rows[1].request_uid], datetime.now(UTC)) == 2
    assert [r.request_uid for r in unsynced_rows(conn, limit=10)] == [rows[2].request_uid]
    assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 3  # nothing deleted on sync


def _writer(db: Path, health: Health | None = None) -> BatchWriter[RequestRow]:
    writer: BatchWriter[RequestRow] = BatchWriter(db, lambda row: StoredCall(row=row), health or Health())
    writer.start()
    return writer


def test_the_writer_batches_and_flushes(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    writer = _writer(db)
    for _ in range(1200):
        writer.submit(wire_row())
    assert writer.flush(60)
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1200
    writer.close()


def test_a_clean_close_writes_everything_still_queued(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    writer = _writer(db)
    for _ in range(3000):
        writer.submit(wire_row())
    writer.close()  # no flush first
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 3000


def test_a_bad_item_is_counted_and_the_rest_written(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    health = Health()

    def prepare(item):
        if item == "bad":
            raise ValueError("cannot build this row")
        return StoredCall(row=item)

    writer: BatchWriter = BatchWriter(db, prepare, health)
    writer.start()
    writer.submit(wire_row())
    writer.submit("bad")
    writer.submit(wire_row())
    writer.close()
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 2
    assert health.errors() == {"store.prepare": 1}
    # ...and the count itself is persisted for `status`.
    assert sqlite3.connect(db).execute("SELECT kind, count FROM capture_errors").fetchall() == [
        ("store.prepare", 1)
    ]


def test_the_writer_says_which_items_are_stored_and_never_one_that_failed(tmp_path: Path):
    """The journal forgets a call only once its row is committed (or can never be built)."""
    db = tmp_path / "db.sqlite"
    told: list = []
    duplicate = wire_row()

    def prepare(item):
        if item == "bad":
            raise ValueError("cannot build this row")
        return StoredCall(row=item)

    writer: BatchWriter = BatchWriter(db, prepare, Health(), on_stored=told.extend)
    writer.start()
    first, second, refused = wire_row(), wire_row(), wire_row()
    for item in (first, "bad", duplicate, second):
        writer.submit(item)
    assert writer.flush(60)
    with sqlite3.connect(db) as conn:  # this row cannot commit
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON requests WHEN NEW.request_uid = '{refused.request_uid}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    writer.submit(duplicate)  # a request_uid already stored is skipped: nothing to keep in the journal
    writer.submit(refused)
    writer.close()
    assert sorted(map(str, told)) == sorted(map(str, ["bad", first, duplicate, second, duplicate]))
    assert sqlite3.connect(db).execute("SELECT count(*) FROM requests").fetchone() == (3,)


def test_error_counts_are_persisted_even_when_no_call_comes(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    health = Health()
    writer = _writer(db, health)
    health.error("capture.stream")
    health.error("capture.stream")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = (
            sqlite3.connect(db)
            .execute("SELECT count FROM capture_errors WHERE kind = 'capture.stream'")
            .fetchall()
        )
        if found:
            break
        time.sleep(0.1)
    writer.close()
    assert found == [(2,)]


def test_committed_rows_survive_kill_9(tmp_path: Path):
    """A crash (SIGKILL) after a commit loses nothing: WAL + synchronous=NORMAL replays on open."""
    db = tmp_path / "db.sqlite"
    script = textwrap.dedent(
        f"""
        import sys, time, uuid
        from pathlib import Path
        from datetime import UTC, datetime
        from halton_meter.health import Health
        from halton_meter.protocol import RequestRow
        from halton_meter.store import BatchWriter, StoredCall
        now = datetime.now(UTC)
        writer = BatchWriter(Path({str(db)!r}), lambda r: StoredCall(row=r), Health())
        writer.start()
        for _ in range(250):
            writer.submit(RequestRow(request_uid=uuid.uuid4(), machine_id="m", started_at=now, ended_at=now,
                                     provider="openai", endpoint="/v1/chat/completions"))
        assert writer.flush(60)
        print("committed", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "committed"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert Path(f"{db}-wal").exists()  # never checkpointed: the rows live only in the WAL
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 250


def test_captured_bodies_stay_local(tmp_path: Path):
    conn = open_store(tmp_path / "db.sqlite")
    row = wire_row()
    with transaction(conn):
        insert_calls(
            conn,
            [
                StoredCall(
                    row=row, request_body=b'{"prompt"}', response_body=b"data: ...", bodies_truncated=True
                )
            ],
        )
    stored = conn.execute("SELECT request_body, response_body, truncated FROM request_bodies").fetchone()
    assert tuple(stored) == (b'{"prompt"}', b"data: ...", 1)
    (wire,) = rows_to_protocol(conn.execute("SELECT * FROM requests"))
    dumped = wire.model_dump_json()  # what the sync path sends: never the bodies
    assert "data: ..." not in dumped and "body" not in dumped
