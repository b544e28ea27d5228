"""The call journal: records that check themselves, segments that go once stored, replay into SQLite."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from halton_meter.capture import CapturedCall
from halton_meter.health import Health
from halton_meter.journal import Journal, frame, read_records
from halton_meter.pricing import PriceBook
from halton_meter.recorder import RowBuilder, decode_call, encode_call, replay_journal
from halton_meter.store import insert_calls, open_store, transaction
from halton_meter.usage import RequestInfo, Usage

STARTED = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC)


def call(project: str = "default", **usage) -> CapturedCall:
    return CapturedCall(
        request_uid=uuid.uuid4(),
        info=RequestInfo("openai", "/v1/chat/completions", "gpt-4o", streamed=True, prompt_hash="ab" * 32),
        usage=Usage(
            model_served="gpt-4o-2024-08-06", input_tokens=1000, output_tokens=100, complete=True, **usage
        ),
        status_code=200,
        started_at=STARTED,
        ended_at=STARTED.replace(second=2),
        ttfb_ms=300,
        project=project,
        attribution_tier="header" if project != "default" else "default",
    )


def rows(db: Path) -> dict[str, sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {r["request_uid"]: r for r in conn.execute("SELECT * FROM requests")}
    finally:
        conn.close()


def test_records_check_themselves_and_a_torn_tail_is_reported_not_read():
    records = [frame(b"one"), frame(b"two"), frame(b"three")]
    data = b"".join(records)
    assert read_records(data, Path("s")) == ([b"one", b"two", b"three"], [])
    payloads, damage = read_records(data[:-2], Path("s"))
    assert payloads == [b"one", b"two"]
    assert len(damage) == 1 and damage[0].tail and damage[0].length == len(records[2]) - 2


def test_a_damaged_record_in_the_middle_hides_none_after_it():
    middle = bytearray(frame(b"corrupted payload"))
    middle[-3] ^= 0xFF  # the checksum no longer matches
    payloads, damage = read_records(frame(b"before") + bytes(middle) + frame(b"after"), Path("s"))
    assert payloads == [b"before", b"after"]
    assert len(damage) == 1 and not damage[0].tail


def test_a_call_record_round_trips_every_field():
    original = call(
        "web",
        billed_cost_usd=Decimal("0.0037756"),
        extra_units={"web_search_requests": 2},
        cache_read_tokens=64,
        parse_errors=1,
    )
    original.request_body, original.response_body, original.bodies_truncated = b"\x00req", b"resp\xff", True
    original.error, original.capture_failed = "capture failed mid-body; usage incomplete", True
    copy = decode_call(encode_call(original))
    original.journaled_in = []
    assert copy == original


def test_segments_roll_over_and_go_once_their_calls_are_stored(tmp_path: Path):
    journal = Journal(tmp_path / "journal", Health(), segment_bytes=100)
    journal.open()
    first = [journal.append(b"x" * 60) for _ in range(2)]  # the second one fills segment 1
    third = journal.append(b"y" * 60)  # past 100 bytes: segment 2
    assert first == [1, 1] and third == 2
    assert [p.name for p in journal.segments()] == ["00000001.log", "00000002.log"]
    journal.release([1])
    assert len(journal.segments()) == 2  # one call of segment 1 is not stored yet
    journal.release([1])
    assert [p.name for p in journal.segments()] == ["00000002.log"]
    journal.release([2])
    assert [p.name for p in journal.segments()] == ["00000002.log"]  # still being appended to
    assert journal.close() == []
    assert journal.segments() == []


def test_close_keeps_the_segments_that_hold_unstored_calls(tmp_path: Path):
    journal = Journal(tmp_path / "journal", Health(), segment_bytes=100)
    journal.open()
    stored = journal.append(b"a" * 90)
    pending = journal.append(b"b" * 90)
    journal.release([stored])
    assert [p.name for p in journal.close()] == [f"{pending:08d}.log"]
    assert journal.append(b"late") is None  # closed: nothing more is written


def test_a_new_run_appends_after_the_segments_it_found(tmp_path: Path):
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / "00000041.log").write_bytes(frame(b"left by a killed run"))
    journal = Journal(folder, Health())
    journal.open()
    assert journal.append(b"new") == 42
    assert (folder / "00000041.log").read_bytes() == frame(b"left by a killed run")


def test_a_journal_that_cannot_be_written_fails_open_and_counts(tmp_path: Path):
    blocked = tmp_path / "journal"
    blocked.write_text("a file where the folder should be")
    health = Health()
    journal = Journal(blocked, health)
    journal.open()
    assert journal.append(b"call") is None
    assert journal.append(b"call") is None
    assert health.errors() == {"journal.write": 2}
    blocked.unlink()  # fixed while running: the next call is journaled again
    assert journal.append(b"call") == 1


def test_replay_stores_what_sqlite_lacks_once_and_counts_a_torn_tail(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    health = Health()
    build = RowBuilder(PriceBook(), "m-test", health)
    already = call("stored-before")
    missing = call()
    relabelled = call("web")  # journaled twice: the directory lookup ended after the first record
    early = CapturedCall(**{**vars(relabelled), "project": "default", "attribution_tier": "default"})
    conn = open_store(db)
    with transaction(conn):
        insert_calls(conn, [build(already)])
    conn.close()

    journal = Journal(tmp_path / "journal", health)
    journal.folder.mkdir()
    torn = frame(encode_call(call()))
    records = [frame(encode_call(c)) for c in (already, missing, early, relabelled)]
    (journal.folder / "00000001.log").write_bytes(b"".join(records) + torn[:20])

    replayed = replay_journal(journal, db, build, health)
    assert (replayed.calls, replayed.restored, replayed.damaged) == (3, 2, 1)
    stored = rows(db)
    assert set(stored) == {str(already.request_uid), str(missing.request_uid), str(relabelled.request_uid)}
    assert stored[str(already.request_uid)]["project"] == "stored-before"
    assert stored[str(relabelled.request_uid)]["project"] == "web"  # the last record of a call wins
    assert stored[str(missing.request_uid)]["cost_nusd"] is not None
    assert journal.segments() == []
    # The damage is counted where `halton-meter status` reads it.
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT kind, count FROM capture_errors").fetchall() == [("journal.torn", 1)]
    # Replaying the same records again changes nothing.
    (journal.folder / "00000002.log").write_bytes(b"".join(records))
    assert replay_journal(journal, db, build, health).restored == 0
    assert len(rows(db)) == 3


def download_with_results() -> CapturedCall:
    """A batch results download as capture leaves it: its own call, and one result per batched request."""
    from halton_meter.providers.batch_results import BatchResult, download_uid, result_uid

    info = RequestInfo(
        "anthropic", "/v1/messages/batches/{batch_id}/results", None, streamed=False, batch=True,
        resource_id="msgbatch_01",
    )  # fmt: skip
    served = Usage(
        model_served="claude-sonnet-4-5", provider_request_id="msg_1", input_tokens=160, output_tokens=45,
        cache_read_tokens=30, cache_write_tokens=10, region="us", complete=True,
    )  # fmt: skip
    return CapturedCall(
        request_uid=download_uid("anthropic", "msgbatch_01"),
        info=info,
        usage=Usage(complete=True),
        status_code=200,
        started_at=STARTED,
        ended_at=STARTED.replace(second=2),
        ttfb_ms=30,
        project="web",
        attribution_tier="header",
        results=[
            BatchResult(result_uid("anthropic", "msgbatch_01", "a"), "/v1/messages", 200, served),
            BatchResult(
                result_uid("anthropic", "msgbatch_01", "b"),
                "/v1/messages",
                499,
                Usage(complete=True),
                "batch result canceled",
            ),
        ],
    )


def test_a_download_with_batch_results_is_one_record_and_its_rows():
    original = download_with_results()
    copy = decode_call(encode_call(original))
    assert copy == original
    download, served, canceled = RowBuilder(PriceBook(), "m-test", Health()).rows(copy)
    assert download.row.request_uid == original.request_uid and download.row.latency_ms == 2000
    assert (served.row.endpoint, served.row.batch, served.row.project) == ("/v1/messages", True, "web")
    assert (served.row.input_tokens, served.row.region, served.row.model_served) == (
        160,
        "us",
        "claude-sonnet-4-5",
    )
    assert served.row.latency_ms is None and served.row.ttfb_ms is None  # the meter did not see it run
    assert served.row.started_at == original.started_at
    assert "batch" in served.row.price_card
    assert (canceled.row.status_code, canceled.row.input_tokens, canceled.error) == (
        499, None, "batch result canceled",
    )  # fmt: skip


def test_replaying_batch_results_stores_each_once(tmp_path: Path):
    db = tmp_path / "db.sqlite"
    health = Health()
    build = RowBuilder(PriceBook(), "m-test", health)
    journal = Journal(tmp_path / "journal", health)
    journal.folder.mkdir()
    record = frame(encode_call(download_with_results()))
    (journal.folder / "00000001.log").write_bytes(record)
    assert replay_journal(journal, db, build, health).restored == 3
    # Downloaded again (a new download row would have the same uid too): nothing new.
    (journal.folder / "00000002.log").write_bytes(record)
    replay_journal(journal, db, build, health)
    assert len(rows(db)) == 3
