"""The warehouse pool and writer: busy is 429, unreachable is 503, only transient errors are retried."""

from __future__ import annotations

import asyncio
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
        release, taken = threading.Event(), threading.Event()
        holding = asyncio.create_task(pool.run(lambda client: (taken.set(), release.wait(60))))
        assert await asyncio.to_thread(taken.wait, 60), "the first operation never got the pool's client"
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
        started, finished = threading.Event(), threading.Event()

        def slow(client):
            started.set()
            threading.Event().wait(0.3)
            finished.set()

        task = asyncio.create_task(pool.run(slow))
        assert await asyncio.to_thread(started.wait, 60), "the operation never started"
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
        release, storing = asyncio.Event(), asyncio.Event()

        async def stuck_insert(items):  # the one flusher is busy with a slow INSERT
            storing.set()
            await release.wait()
            return [item.rows for item in items]

        writer._store = stuck_insert  # type: ignore[method-assign]
        await writer.start()
        ids = {"workspace_id": uuid.uuid4(), "device_id": uuid.uuid4()}
        first = asyncio.create_task(writer.write_batch(**ids, batch_id=uuid.uuid4(), rows=_rows("m", 2)))
        await asyncio.wait_for(storing.wait(), 60)  # the flusher holds the first batch
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


def test_a_batch_block_is_what_clickhouse_connect_writes_and_a_group_is_one_part(warehouse) -> None:
    """Each batch is encoded on arrival as a Native block of its own: the same bytes clickhouse-connect writes
    for those columns (workspace, device and batch id from the batch, never from its rows), and an INSERT of
    several such blocks is one part."""
    from datetime import timedelta

    from clickhouse_connect.driver.transform import NativeTransform

    from halton_api.warehouse_writer import REQUEST_COLUMNS, _BlockEncoder

    table = f"{warehouse.databases.raw}.requests"
    client = warehouse.client()
    described = _BlockEncoder.describe(client, table)
    encoder = _BlockEncoder(table, client.create_insert_context(table, list(REQUEST_COLUMNS)), None)
    workspace, device, batch_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # A month no other test writes: the partition holds only this test's parts.
    start = datetime(2001, 1, 1, tzinfo=UTC)
    rows = [_wire_row(row("m", started_at=start + timedelta(seconds=i))) for i in range(5)]
    constants = {"workspace_id": workspace, "device_id": device, "batch_id": batch_id}
    context = client.create_insert_context(table, list(REQUEST_COLUMNS), column_oriented=True)
    context.compression = None
    context.data = [[constants.get(name) or getattr(r, name) for r in rows] for name in REQUEST_COLUMNS]
    written = b"".join(NativeTransform.build_insert(context)).partition(b" FORMAT Native\n")[
        2
    ]  # less the INSERT
    assert encoder.block(workspace, device, batch_id, rows) == written

    batches = [
        (
            uuid.uuid4(),
            [_wire_row(row("m", started_at=start + timedelta(hours=h, seconds=i))) for i in range(n)],
        )
        for h, n in ((1, 3), (2, 4), (3, 2))
    ]
    body = b"".join(described.block(workspace, device, b, r) for b, r in batches)
    described.insert(client, body)
    raw = warehouse.databases.raw
    stored = client.query(
        f"SELECT batch_id, count() FROM {raw}.requests WHERE workspace_id = '{workspace}' GROUP BY batch_id"
    ).result_rows
    assert dict(stored) == {b: len(r) for b, r in batches}
    parts = client.command(
        f"SELECT count() FROM system.parts WHERE database = '{raw}' AND table = 'requests'"
        " AND partition = '200101' AND active"
    )
    assert int(parts) == 1


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
    on the values the writer sends: UUID objects (a batch's constant and distinct ones), aware datetimes in
    any offset (before the epoch and with sub-millisecond parts too), Decimals with None and zero."""
    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from clickhouse_connect.driver.transform import NativeTransform

    from halton_api.warehouse_writer import _Constant, _faster_type

    batch_id = uuid.uuid4()
    constant = _Constant(batch_id, 5)
    assert constant == [batch_id] * 5
    moments = [
        datetime(2026, 5, 1, 10, 0, 0, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2))),
        RequestRow.model_validate(row("m")).started_at,  # pydantic's own tzinfo
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ]
    costs = [Decimal("0.009630000"), None, Decimal("0"), Decimal("123456789.123456789"), Decimal("1E+2")]
    columns = [
        ("a", "UUID", constant),
        ("b", "UUID", [uuid.uuid4() for _ in range(5)]),
        ("c", "DateTime64(3, 'UTC')", moments),
        ("d", "Nullable(Decimal(18, 9))", costs),
        ("e", "Decimal(18, 9)", [c or Decimal("0.5") for c in costs]),
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


def test_a_batch_after_its_devices_mark_is_written_without_asking_and_one_reaching_back_is_checked(
    warehouse, monkeypatch, caplog
) -> None:
    """The device's mark (how far its rows are stored, kept by `record_written`) decides: a batch starting
    after it is written without a dedupe query; one reaching back to it, or without a mark, is checked row by
    row, whichever writer (API process) wrote the rows. A copy sent before the first copy's mark moved is
    written twice, and every read counts it once."""
    from datetime import timedelta

    from halton_api import warehouse_writer
    from halton_api.store import requests

    workspace, device = uuid.uuid4(), uuid.uuid4()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    earlier, later, latest = (_timed_rows("m", start + timedelta(minutes=m), 20) for m in (0, 10, 20))
    probes: list[int] = []
    marks: dict[uuid.UUID, datetime] = {}

    def counted_probe(client, **kwargs):
        probes.append(len(kwargs["uids"]))
        return requests.existing_uids(client, **kwargs)

    async def record(written: dict[uuid.UUID, datetime]) -> None:
        marks.update({d: max(t, marks.get(d, t)) for d, t in written.items()})

    async def broken_record(written: dict[uuid.UUID, datetime]) -> None:
        raise OSError("PostgreSQL went away")

    monkeypatch.setattr(warehouse_writer, "existing_uids", counted_probe)

    async def main() -> list[int]:
        one, other = (
            WarehouseWriter(
                WarehousePool(warehouse.url, size=2, queue_timeout=5),
                warehouse.databases,
                record_written=record,
            )
            for _ in range(2)
        )
        for writer in (one, other):
            await writer.start()

        async def send(writer: WarehouseWriter, rows: list[WireRow], mark: datetime | None) -> int:
            ids = {"workspace_id": workspace, "device_id": device, "batch_id": uuid.uuid4()}
            return len(await writer.write_batch(**ids, rows=rows, written_through=mark))

        accepted = [await send(one, earlier, None)]  # no mark yet: checked
        assert probes == [20] and marks == {device: earlier[-1].started_at}
        accepted.append(await send(one, later, marks[device]))  # after the mark: not checked
        accepted.append(await send(other, later[:5], marks[device]))  # another process, a re-send: checked
        assert probes == [20, 5] and marks == {device: later[-1].started_at}
        stale = marks[device]
        accepted.append(await send(other, latest, stale))
        accepted.append(await send(one, latest, marks[device]))  # re-sent after its answer: checked
        accepted.append(await send(one, latest, stale))  # sent again before the first copy's mark moved
        assert probes == [20, 5, 20]
        other.record_written = (
            broken_record  # the mark cannot be kept: the batch is still stored and answered
        )
        accepted.append(await send(other, _timed_rows("m", start + timedelta(minutes=30), 3), marks[device]))
        for writer in (one, other):
            await writer.close()
            await writer.pool.close()
        return accepted

    assert asyncio.run(main()) == [20, 20, 0, 20, 0, 20, 3]
    assert marks == {device: latest[-1].started_at}
    assert "could not record how far 1 device(s) are written" in caplog.text
    client = warehouse.client()
    raw = warehouse.databases.raw
    where = f"WHERE workspace_id = '{workspace}'"
    assert client.command(f"SELECT count() FROM {raw}.requests_dedup {where}") == 63
    assert client.command(f"SELECT count() FROM {raw}.requests {where}") == 83  # `latest` twice


def test_a_batch_reaches_back_when_it_starts_at_or_before_its_devices_mark() -> None:
    from datetime import timedelta

    from halton_api.warehouse_writer import _Pending, _reaches_back

    t = datetime(2026, 11, 20, 12, tzinfo=UTC)
    rows = _timed_rows("m", t, 3)  # t, t + 1 s, t + 2 s

    def pending(mark: datetime | None, rows: list[WireRow] = rows) -> _Pending:
        return _Pending(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), rows, None, mark)  # type: ignore[arg-type]

    assert _reaches_back(pending(None))  # no mark: not known
    assert _reaches_back(pending(t))  # its first call is the mark: a re-send
    assert _reaches_back(pending(t + timedelta(seconds=5)))
    assert not _reaches_back(pending(t - timedelta(microseconds=1)))
    assert _reaches_back(pending(t, rows=[]))  # nothing to check, and no error
