"""One sync pass against the fake cloud: batches, gzip, byte cap, 413 halving, 422 set-aside, 401/403/5xx."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from halton_meter.cloud.client import CloudClient
from halton_meter.cloud.sync import FORBIDDEN, TRANSIENT, UNAUTHORISED, Uploader
from halton_meter.paths import MeterPaths
from halton_meter.store import count_unsynced, open_store
from halton_meter.testing.fake_cloud import FakeCloud, store_rows


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def paired(home: MeterPaths, cloud: FakeCloud) -> Iterator[tuple[sqlite3.Connection, Uploader]]:
    token = cloud.pair(home)
    conn = open_store(home.db)
    client = CloudClient(cloud.url)
    yield conn, Uploader(conn, client, token, batch_rows=100, batch_bytes=4 * 1024 * 1024)
    client.close()
    conn.close()


def synced_uids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT request_uid FROM requests WHERE synced_at IS NOT NULL")}


def test_rows_go_in_gzip_batches_and_are_marked_synced(home, cloud, paired):
    conn, uploader = paired
    uids = store_rows(home, 250)
    result = uploader.run_pass()
    assert (
        result.stopped is None and result.synced == 250 and result.accepted == 250 and result.remaining == 0
    )
    assert [b.rows for b in cloud.batches] == [100, 100, 50] and all(b.gzip for b in cloud.batches)
    assert cloud.batches[0].uids == uids[:100]  # oldest first
    assert synced_uids(conn) == set(uids) == cloud.unique_uids()
    again = uploader.run_pass()
    assert again.posts == [] and again.synced == 0


def test_the_byte_cap_splits_batches(home, cloud, paired):
    _, uploader = paired
    store_rows(home, 40)
    uploader.batch_bytes = 16 * 1024  # about 20 rows of ~700 bytes
    result = uploader.run_pass()
    assert result.synced == 40 and len(cloud.batches) >= 2 and max(b.rows for b in cloud.batches) < 40


def test_413_halves_the_batch(home, cloud, paired):
    conn, uploader = paired
    store_rows(home, 100)
    cloud.max_rows = 30
    result = uploader.run_pass()
    assert result.stopped is None and result.synced == 100 and count_unsynced(conn) == 0
    statuses = [(b.status, b.rows) for b in cloud.batches]
    assert statuses[:3] == [(413, 100), (413, 50), (200, 25)]
    assert max(rows for status, rows in statuses if status == 200) <= 30
    assert uploader.batch_rows <= 30  # later batches start small


@pytest.mark.parametrize("name_rows", [True, False], ids=["server-names-the-row", "bisect"])
def test_422_sets_aside_exactly_the_bad_row(home, cloud, paired, name_rows):
    conn, uploader = paired
    uids = store_rows(home, 64)
    bad = uids[37]
    cloud.reject_uids[bad] = "project: unknown cost center"
    cloud.name_rows = name_rows
    result = uploader.run_pass()
    assert result.stopped is None
    assert [uid for uid, _ in result.set_aside] == [bad]
    assert synced_uids(conn) == set(uids) - {bad} == cloud.unique_uids()
    reason = conn.execute("SELECT sync_rejected FROM requests WHERE request_uid = ?", (bad,)).fetchone()[0]
    assert reason.startswith("HTTP 422") and "unknown cost center" in reason
    assert count_unsynced(conn) == 0  # the bad row never blocks the queue again
    assert uploader.run_pass().posts == []


def test_a_batch_level_422_sets_nothing_aside(home, cloud, paired, monkeypatch):
    conn, uploader = paired
    store_rows(home, 3)
    monkeypatch.setattr(
        cloud,
        "_batch",
        lambda *a: (422, {"detail": "schema_version 1 is not supported", "errors": [{"row": None}]}, {}),
    )
    result = uploader.run_pass()
    assert result.stopped == TRANSIENT and "schema_version" in result.error
    assert result.set_aside == [] and count_unsynced(conn) == 3


def test_a_row_that_fails_local_validation_is_set_aside(home, cloud, paired):
    conn, uploader = paired
    good = store_rows(home, 2)
    conn.execute("UPDATE requests SET cache_read_tokens = 500 WHERE request_uid = ?", (good[0],))
    result = uploader.run_pass()
    assert [uid for uid, _ in result.set_aside] == [good[0]] and "invalid locally" in result.set_aside[0][1]
    assert cloud.unique_uids() == {good[1]}


@pytest.mark.parametrize(
    ("knob", "stopped"),
    [("revoke", UNAUTHORISED), ("remove", FORBIDDEN)],
)
def test_401_and_403_stop_the_pass_and_mark_nothing(home, cloud, paired, knob, stopped):
    conn, uploader = paired
    store_rows(home, 5)
    getattr(cloud, knob)()
    result = uploader.run_pass()
    assert result.stopped == stopped and result.synced == 0 and count_unsynced(conn) == 5
    assert result.error.startswith(("HTTP 401", "HTTP 403"))


def test_503_and_a_dead_cloud_are_transient(home, cloud, paired):
    conn, uploader = paired
    store_rows(home, 5)
    cloud.fail_next(1, status=503, retry_after=7)
    result = uploader.run_pass()
    assert result.stopped == TRANSIENT and result.retry_after == 7 and count_unsynced(conn) == 5
    cloud.go_down()
    result = uploader.run_pass()
    assert result.stopped == TRANSIENT and result.posts[-1].status is None and "cannot reach" in result.error
    cloud.come_up()
    assert uploader.run_pass().synced == 5
