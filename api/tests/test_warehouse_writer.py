"""The warehouse pool and writer: busy is 429, unreachable is 503, only transient errors are retried."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from halton_api.batch_decoding import WireRow
from halton_api.testing.factories import row
from halton_api.warehouse_writer import (
    WarehouseBusy,
    WarehousePool,
    WarehouseUnavailable,
    WarehouseWriter,
    classify,
    ping,
)
from halton_meter.protocol import RequestRow


def test_classification() -> None:
    assert classify(DatabaseError("too many parts", code=252)) is WarehouseBusy
    assert classify(DatabaseError("timeout", code=159)) is WarehouseUnavailable
    assert classify(OperationalError("Network Error")) is WarehouseUnavailable
    assert classify(ConnectionRefusedError()) is WarehouseUnavailable
    assert classify(ProgrammingError("syntax error", code=62)) is None
    assert classify(DatabaseError("unknown table", code=60)) is None
    assert classify(ValueError("bug")) is None


def test_a_full_pool_answers_busy(warehouse) -> None:
    async def main() -> None:
        pool = WarehousePool(warehouse.url, size=1, queue_timeout=0.2)
        release = threading.Event()
        holding = asyncio.create_task(pool.run(lambda client: release.wait(5)))
        await asyncio.sleep(0.05)
        with pytest.raises(WarehouseBusy) as busy:
            await pool.run(ping)
        assert busy.value.status_code == 429 and busy.value.retry_after > 0
        release.set()
        await holding
        assert await pool.run(ping) >= 0  # the client is reused once free
        await pool.close()

    asyncio.run(main())


def test_transient_errors_are_retried_and_others_are_not(warehouse) -> None:
    calls = {"transient": 0, "bug": 0}

    def flaky(client):
        calls["transient"] += 1
        if calls["transient"] < 3:
            raise OperationalError("Network Error")
        return "ok"

    def bug(client):
        calls["bug"] += 1
        raise ProgrammingError("syntax error", code=62)

    async def main() -> None:
        writer = WarehouseWriter(
            WarehousePool(warehouse.url, size=2, queue_timeout=1), warehouse.databases, retries=2
        )
        assert await writer.with_retries(flaky) == "ok"
        with pytest.raises(ProgrammingError):
            await writer.with_retries(bug)
        await writer.pool.close()

    asyncio.run(main())
    assert calls == {"transient": 3, "bug": 1}


def test_an_unreachable_warehouse_is_unavailable_after_the_retries() -> None:
    async def main() -> None:
        writer = WarehouseWriter(
            WarehousePool("http://127.0.0.1:9/", size=1, queue_timeout=1),
            databases=None,
            retries=1,  # type: ignore[arg-type]
        )
        with pytest.raises(WarehouseUnavailable) as unavailable:
            await writer.with_retries(ping)
        assert unavailable.value.status_code == 503

    asyncio.run(main())


def test_close_waits_for_operations_in_flight(warehouse) -> None:
    async def main() -> None:
        pool = WarehousePool(warehouse.url, size=2, queue_timeout=1)
        finished = threading.Event()

        def slow(client):
            threading.Event().wait(0.3)
            finished.set()

        task = asyncio.create_task(pool.run(slow))
        await asyncio.sleep(0.05)
        await pool.close()
        assert finished.is_set()
        await task
        with pytest.raises(WarehouseUnavailable):
            await pool.run(ping)

    asyncio.run(main())


def _wire_row(data: dict) -> WireRow:
    """A row as the API's decoder reads it from a meter's JSON."""
    return msgspec.json.decode(json.dumps(data), type=WireRow)


def _rows(machine_id: str, count: int) -> list[WireRow]:
    return [_wire_row(row(machine_id)) for _ in range(count)]


def test_concurrent_batches_share_one_insert_and_are_deduplicated(warehouse) -> None:
    workspace, device = uuid.uuid4(), uuid.uuid4()
    first, second, third = _rows("m", 30), _rows("m", 20), _rows("m", 10)

    async def main() -> list[list[WireRow]]:
        writer = WarehouseWriter(
            WarehousePool(warehouse.url, size=2, queue_timeout=5), warehouse.databases, flushers=1
        )
        await writer.start()
        await writer.write_batch(workspace_id=workspace, device_id=device, batch_id=uuid.uuid4(), rows=first)
        results = await asyncio.gather(
            *(
                writer.write_batch(workspace_id=workspace, device_id=device, batch_id=uuid.uuid4(), rows=rows)
                for rows in (second, [*first[:5], *third], second)  # old rows, new rows, and a racing copy
            )
        )
        await writer.close()
        await writer.pool.close()
        return results

    results = asyncio.run(main())
    assert [len(r) for r in results] == [20, 10, 0]
    count = warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests")
    assert int(count) == 60  # nothing written twice, even the racing copy


def test_a_failed_insert_fails_every_batch_in_it(warehouse) -> None:
    from halton_warehouse import Databases

    async def main() -> list[BaseException | list]:
        missing = Databases.with_prefix("no_such_prefix_")
        writer = WarehouseWriter(WarehousePool(warehouse.url, size=2, queue_timeout=5), missing, flushers=1)
        await writer.start()
        outcomes = await asyncio.gather(
            *(
                writer.write_batch(
                    workspace_id=uuid.uuid4(),
                    device_id=uuid.uuid4(),
                    batch_id=uuid.uuid4(),
                    rows=_rows("m", 3),
                )
                for _ in range(3)
            ),
            return_exceptions=True,
        )
        await writer.close()
        with pytest.raises(WarehouseUnavailable):  # closed: no more batches
            await writer.write_batch(
                workspace_id=uuid.uuid4(), device_id=uuid.uuid4(), batch_id=uuid.uuid4(), rows=[]
            )
        await writer.pool.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert all(isinstance(o, DatabaseError) for o in outcomes), outcomes


def test_a_batch_still_queued_after_the_timeout_is_told_to_come_back(warehouse) -> None:
    async def main() -> None:
        writer = WarehouseWriter(
            WarehousePool(warehouse.url, size=1, queue_timeout=1),
            warehouse.databases,
            flushers=1,
            queue_timeout=0.3,
        )
        release = asyncio.Event()

        async def stuck_insert(items):  # the one flusher is busy with a slow INSERT
            await release.wait()
            return [item.rows for item in items]

        writer._store = stuck_insert  # type: ignore[method-assign]
        await writer.start()
        ids = {"workspace_id": uuid.uuid4(), "device_id": uuid.uuid4()}
        first = asyncio.create_task(writer.write_batch(**ids, batch_id=uuid.uuid4(), rows=_rows("m", 2)))
        await asyncio.sleep(0.05)
        with pytest.raises(WarehouseBusy) as busy:
            await writer.write_batch(**ids, batch_id=uuid.uuid4(), rows=_rows("m", 2))
        assert busy.value.status_code == 429
        release.set()
        assert len(await first) == 2  # the batch being written when time ran out still gets its answer
        await writer.close()
        await writer.pool.close()

    asyncio.run(main())


def test_the_probe_finds_what_the_workspace_has_in_the_machines_windows_in_every_form(
    warehouse, monkeypatch
) -> None:
    from datetime import datetime, timedelta

    from halton_api.store import requests
    from halton_api.store.requests import existing_uids
    from halton_api.warehouse_writer import _Pending, _scope

    workspace, other = uuid.uuid4(), uuid.uuid4()
    today = datetime.now(UTC).replace(hour=12)
    # Sub-millisecond starts at both ends of the span: stored truncated, still inside the probe's window.
    edge = today.replace(microsecond=999_999)
    stored = [
        _wire_row(row("m", started_at=edge - timedelta(minutes=10))),
        *_rows("m", 38),
        _wire_row(row("m", started_at=edge)),
    ]
    earlier = [_wire_row(row("m", started_at=today - timedelta(days=3))) for _ in range(5)]
    # Another machine's row (a quote in its id: machine ids are bound as parameters, never inlined).
    elsewhere = [_wire_row(row("m'2", started_at=edge - timedelta(minutes=5)))]

    async def store(workspace_id: uuid.UUID, rows: list[WireRow]) -> None:
        writer = WarehouseWriter(WarehousePool(warehouse.url, size=2, queue_timeout=5), warehouse.databases)
        await writer.start()
        await writer.write_batch(
            workspace_id=workspace_id, device_id=uuid.uuid4(), batch_id=uuid.uuid4(), rows=rows
        )
        await writer.close()
        await writer.pool.close()

    asyncio.run(store(workspace, [*stored, *earlier]))
    asyncio.run(store(workspace, elsewhere))
    asyncio.run(store(other, _rows("m", 3)))
    fresh = [uuid.uuid4() for _ in range(1_700)]  # over PROBE_LIST_LIMIT: the format() form when named
    asked = [*fresh, *(r.request_uid for r in stored[:30]), *(r.request_uid for r in earlier)]
    client = warehouse.client()
    asked += [stored[0].request_uid, stored[-1].request_uid, elsewhere[0].request_uid]

    def scope(*batches: list[WireRow]):
        return _scope([_Pending(workspace, uuid.uuid4(), uuid.uuid4(), rows, None) for rows in batches])  # type: ignore[arg-type]

    span = scope(stored)

    def probe(workspace_id: uuid.UUID = workspace, within=span) -> set[uuid.UUID]:
        return existing_uids(
            client, databases=warehouse.databases, workspace_id=workspace_id, uids=asked, scope=within
        )

    # The windows listed (they hold 40 rows, far fewer than asked): not the earlier day's rows, not another
    # machine's, not unknown ones.
    found = probe()
    assert found == {r.request_uid for r in [*stored[:30], stored[-1]]}
    assert probe(within=scope(stored, elsewhere)) == found | {elsewhere[0].request_uid}
    assert not probe(other)
    # Windows holding more than the listing takes: the UUIDs named, as one format() string, then an IN list.
    monkeypatch.setattr(requests, "LISTED_PER_UUID", 0)
    monkeypatch.setattr(requests, "LISTED_FLOOR", 10)
    assert probe() == found
    assert probe(within=scope(stored, elsewhere)) == found | {elsewhere[0].request_uid}
    monkeypatch.setattr(requests, "PROBE_LIST_LIMIT", 10_000)
    assert probe() == found
    assert not probe(other)
    assert scope(earlier).days == {(today - timedelta(days=3)).date()}


def test_large_groups_are_probed_in_chunks_and_deduplicated(warehouse, monkeypatch) -> None:
    from halton_api import warehouse_writer
    from halton_api.store import requests

    monkeypatch.setattr(requests, "PROBE_LIST_LIMIT", 50)  # small, to run the large-group form
    monkeypatch.setattr(warehouse_writer, "PROBE_CHUNK", 70)
    workspace, device = uuid.uuid4(), uuid.uuid4()
    first, second = _rows("m", 120), _rows("m", 90)

    async def main() -> list[list[WireRow]]:
        writer = WarehouseWriter(WarehousePool(warehouse.url, size=2, queue_timeout=5), warehouse.databases)
        await writer.start()
        await writer.write_batch(workspace_id=workspace, device_id=device, batch_id=uuid.uuid4(), rows=first)
        results = await asyncio.gather(
            *(
                writer.write_batch(workspace_id=workspace, device_id=device, batch_id=uuid.uuid4(), rows=rows)
                for rows in ([*first[:60], *second], first[100:], second)
            )
        )
        await writer.close()
        await writer.pool.close()
        return results

    results = asyncio.run(main())
    assert [len(r) for r in results] == [90, 0, 0]
    count = warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests")
    assert int(count) == 210


def test_columns_follow_the_table_order_with_constants_from_each_batch() -> None:
    from halton_api.warehouse_writer import REQUEST_COLUMNS, _columns, _Pending

    batches = [_Pending(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), _rows("m", n), None) for n in (2, 0, 3)]  # type: ignore[arg-type]
    stamp = datetime.now(UTC).replace(microsecond=0)
    columns = _columns(batches, [b.rows for b in batches], stamp)
    assert len(columns) == len(REQUEST_COLUMNS) and all(len(c) == 5 for c in columns)
    by_name = dict(zip(REQUEST_COLUMNS, columns, strict=True))
    assert by_name["workspace_id"] == [batches[0].workspace_id] * 2 + [batches[2].workspace_id] * 3
    assert by_name["batch_id"] == [batches[0].batch_id] * 2 + [batches[2].batch_id] * 3
    assert by_name["ingested_at"] == [stamp] * 5  # the INSERT's stamp, not a row's
    rows = [*batches[0].rows, *batches[2].rows]
    for name in REQUEST_COLUMNS:
        if name not in ("workspace_id", "device_id", "batch_id", "ingested_at"):
            assert by_name[name] == [getattr(r, name) for r in rows], name


def test_the_garbage_collector_is_tuned_once() -> None:
    import gc

    from halton_api.app import GC_YOUNG_THRESHOLD, tune_gc_for_batches

    tune_gc_for_batches()
    frozen = gc.get_freeze_count()
    tune_gc_for_batches()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() >= frozen > 0


def test_the_faster_encoders_write_the_same_bytes_as_clickhouse_connect() -> None:
    """`_UUIDColumn`, `_DateTime64Column` and `_DecimalColumn` against clickhouse-connect's own encoders,
    on the values the writer sends: UUID objects and datetimes (constant runs and distinct), aware datetimes in any
    offset (before the epoch and with sub-millisecond parts too), Decimals with None and zero."""
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    from halton_api.warehouse_writer import _faster_type, _Runs

    ids = [uuid.uuid4() for _ in range(3)]
    runs = _Runs([(ids[0], 3), (ids[1], 0), (ids[2], 2)])
    assert runs == [ids[0]] * 3 + [ids[2]] * 2
    moments = [
        datetime(2026, 5, 1, 10, 0, 0, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2))),
        RequestRow.model_validate(row("m")).started_at,  # pydantic's own tzinfo
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ]
    costs = [Decimal("0.009630000"), None, Decimal("0"), Decimal("123456789.123456789"), Decimal("1E+2")]
    columns = [
        ("a", "UUID", runs),
        ("b", "UUID", [uuid.uuid4() for _ in range(5)]),
        ("c", "DateTime64(3, 'UTC')", moments),
        ("d", "Nullable(Decimal(18, 9))", costs),
        ("e", "Decimal(18, 9)", [c or Decimal("0.5") for c in costs]),
        ("f", "DateTime64(3, 'UTC')", _Runs([(moments[0], 2), (moments[1], 3)])),  # an INSERT's stamp
    ]
    plain = [get_from_name(type_name) for _, type_name, _ in columns]
    faster = [_faster_type(t) for t in plain]
    assert [type(t) for t in faster] != [type(t) for t in plain]
    assert [t.name for t in faster] == [t.name for t in plain]

    def encode(types) -> bytes:
        context = InsertContext(
            "t", [n for n, _, _ in columns], types, column_oriented=True, compression=None
        )
        context.data = [values for _, _, values in columns]
        return b"".join(NativeTransform.build_insert(context))

    assert encode(faster) == encode(plain)
    assert _faster_type(get_from_name("DateTime64(6)")) == get_from_name("DateTime64(6)")
    assert type(_faster_type(get_from_name("Decimal(38, 9)"))) is type(get_from_name("Decimal(38, 9)"))


def test_inserted_rows_read_back_as_sent(warehouse) -> None:
    """Through the faster encoders into the table and back: ids, timestamps to the millisecond, cost."""
    workspace, device, batch_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = _rows("m", 4)

    async def main() -> None:
        writer = WarehouseWriter(WarehousePool(warehouse.url, size=1, queue_timeout=5), warehouse.databases)
        await writer.start()
        await writer.write_batch(workspace_id=workspace, device_id=device, batch_id=batch_id, rows=rows)
        await writer.close()
        await writer.pool.close()

    asyncio.run(main())
    stored = (
        warehouse.client()
        .query(
            "SELECT request_uid, workspace_id, device_id, batch_id, started_at, ended_at, cost_usd"
            f" FROM {warehouse.databases.raw}.requests WHERE workspace_id = '{workspace}'"
        )
        .result_rows
    )
    by_uid = {r[0]: r[1:] for r in stored}
    assert set(by_uid) == {r.request_uid for r in rows}
    for sent in rows:
        ws, dev, bid, started, ended, cost_usd = by_uid[sent.request_uid]
        assert (ws, dev, bid) == (workspace, device, batch_id)
        for got, want in ((started, sent.started_at), (ended, sent.ended_at)):
            want_ms = want.replace(microsecond=want.microsecond // 1000 * 1000)
            assert got.replace(tzinfo=UTC) == want_ms.astimezone(UTC)
        assert cost_usd == sent.cost_usd


def _timed_rows(machine_id: str, start: datetime, count: int) -> list[WireRow]:
    """`count` rows of one machine, a second apart from `start` (a meter's calls, oldest first)."""
    from datetime import timedelta

    return [_wire_row(row(machine_id, started_at=start + timedelta(seconds=i))) for i in range(count)]


def test_a_batch_after_what_was_written_is_counted_right_whichever_of_probe_and_insert_finishes_first(
    warehouse, monkeypatch
) -> None:
    """The INSERT of a batch that starts after what the writer wrote for its machine runs beside the dedupe
    probe. Held back until the INSERT is done, the probe must still not take the batch's own rows for
    duplicates; rows another process wrote are duplicates, and every read counts them once."""
    from datetime import timedelta

    from halton_api import warehouse_writer
    from halton_api.store import requests

    workspace = uuid.uuid4()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    earlier, later, latest = (_timed_rows("m", start + timedelta(minutes=m), 20) for m in (0, 10, 20))
    real = requests.existing_uids
    inserts: list[int] = []

    def slow_probe(client, **kwargs):
        threading.Event().wait(0.3)  # the INSERT beside it commits first
        return real(client, **kwargs)

    monkeypatch.setattr(warehouse_writer, "existing_uids", slow_probe)

    async def main() -> list[int]:
        one, other = (
            WarehouseWriter(WarehousePool(warehouse.url, size=2, queue_timeout=5), warehouse.databases)
            for _ in range(2)
        )
        for writer in (one, other):
            original = writer._insert
            writer._insert = lambda client, columns, original=original: (  # type: ignore[method-assign]
                inserts.append(len(columns[0])),
                original(client, columns),
            )[1]
            await writer.start()

        async def send(writer: WarehouseWriter, rows: list[WireRow]) -> int:
            ids = {"workspace_id": workspace, "device_id": uuid.uuid4(), "batch_id": uuid.uuid4()}
            return len(await writer.write_batch(**ids, rows=rows))

        accepted = [
            await send(one, earlier),  # a machine the writer has not written for: probed first
            await send(one, later),  # after what it wrote: INSERT and probe side by side
            await send(other, later[:5]),  # another process, a machine it does not know: probed first
            await send(other, latest),  # written by `other` beside its probe
            await send(one, latest),  # after what `one` wrote, but `other` wrote it: all duplicates
        ]
        for writer in (one, other):
            await writer.close()
            await writer.pool.close()
        return accepted

    assert asyncio.run(main()) == [20, 20, 0, 20, 0]
    assert inserts == [20, 20, 20, 20]  # the probed-first re-send wrote nothing; the last was written again
    client = warehouse.client()
    raw = warehouse.databases.raw
    assert (
        client.command(f"SELECT count() FROM {raw}.requests_dedup WHERE workspace_id = '{workspace}'") == 60
    )
    assert client.command(f"SELECT count() FROM {raw}.requests WHERE workspace_id = '{workspace}'") == 80


def test_each_insert_has_a_stamp_of_its_own() -> None:
    from halton_api.warehouse_writer import WarehouseWriter

    writer = WarehouseWriter(None, None)  # type: ignore[arg-type]
    stamps = [writer._next_stamp() for _ in range(2_000)]  # many within one millisecond
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert all(s.microsecond % 1000 == 0 and s.tzinfo is UTC for s in stamps)


def test_what_was_written_per_machine_decides_whether_a_batch_reaches_back() -> None:
    from datetime import timedelta

    from halton_api.store.requests import ProbeScope
    from halton_api.warehouse_writer import _WrittenUntil

    ws, other = uuid.uuid4(), uuid.uuid4()
    t = datetime(2026, 11, 20, 12, tzinfo=UTC)
    second = timedelta(seconds=1)

    def scopes(workspace, machine, first, last):
        return {workspace: ProbeScope(frozenset({first.date()}), {machine: (first, last)})}

    written = _WrittenUntil(limit=2)
    assert written.reaches_back(scopes(ws, "m", t, t))  # nothing known yet
    written.remember(scopes(ws, "m", t, t + 10 * second))
    assert not written.reaches_back(scopes(ws, "m", t + 11 * second, t + 20 * second))
    assert written.reaches_back(scopes(ws, "m", t + 10 * second, t + 20 * second))  # a re-sent last call
    assert written.reaches_back(scopes(other, "m", t + 11 * second, t + 20 * second))  # another workspace's
    written.remember(scopes(ws, "m", t, t + 5 * second))  # a late batch does not move it back
    assert not written.reaches_back(scopes(ws, "m", t + 11 * second, t + 20 * second))
    written.remember(scopes(ws, "n", t, t))
    written.remember(scopes(ws, "o", t, t))  # past the limit: started afresh
    assert written.reaches_back(scopes(ws, "m", t + 11 * second, t + 20 * second))
