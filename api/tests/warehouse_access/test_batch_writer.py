"""The batch writer: group commit, all or nothing per batch, duplicates probed only where they can be."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_api.batch_decoding import WireRow
from halton_api.testing.factories import row, wire_row
from halton_api.warehouse_access.batch_writer import WarehouseWriter
from halton_api.warehouse_access.client_pool import WarehouseBusy, WarehousePool, WarehouseUnavailable


def _rows(machine_id: str, count: int) -> list[WireRow]:
    return [wire_row(row(machine_id)) for _ in range(count)]


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

    from halton_api.warehouse_access import raw_requests as requests
    from halton_api.warehouse_access.batch_writer import _Pending, _scope
    from halton_api.warehouse_access.raw_requests import existing_uids

    workspace, other = uuid.uuid4(), uuid.uuid4()
    today = datetime.now(UTC).replace(hour=12)
    # Sub-millisecond starts at both ends of the span: stored truncated, still inside the probe's window.
    edge = today.replace(microsecond=999_999)
    stored = [
        wire_row(row("m", started_at=edge - timedelta(minutes=10))),
        *_rows("m", 38),
        wire_row(row("m", started_at=edge)),
    ]
    earlier = [wire_row(row("m", started_at=today - timedelta(days=3))) for _ in range(5)]
    # Another machine's row (a quote in its id: machine ids are bound as parameters, never inlined).
    elsewhere = [wire_row(row("m'2", started_at=edge - timedelta(minutes=5)))]

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
    from halton_api.warehouse_access import batch_writer
    from halton_api.warehouse_access import raw_requests as requests

    monkeypatch.setattr(requests, "PROBE_LIST_LIMIT", 50)  # small, to run the large-group form
    monkeypatch.setattr(batch_writer, "PROBE_CHUNK", 70)
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


def test_the_garbage_collector_is_tuned_once() -> None:
    import gc

    from halton_api.app import GC_YOUNG_THRESHOLD, tune_gc_for_batches

    tune_gc_for_batches()
    frozen = gc.get_freeze_count()
    tune_gc_for_batches()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() >= frozen > 0


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

    return [wire_row(row(machine_id, started_at=start + timedelta(seconds=i))) for i in range(count)]


def test_a_batch_after_its_devices_mark_is_written_without_asking_and_one_reaching_back_is_checked(
    warehouse, monkeypatch, caplog
) -> None:
    """The device's mark (how far its rows are stored, kept by `record_written`) decides: a batch starting
    after it is written without a dedupe query; one reaching back to it, or without a mark, is checked row by
    row, whichever writer (API process) wrote the rows. A copy sent before the first copy's mark moved is
    written twice, and every read counts it once."""
    from datetime import timedelta

    from halton_api.warehouse_access import batch_writer
    from halton_api.warehouse_access import raw_requests as requests

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

    monkeypatch.setattr(batch_writer, "existing_uids", counted_probe)

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

    from halton_api.warehouse_access.batch_writer import _Pending, _reaches_back

    t = datetime(2026, 11, 20, 12, tzinfo=UTC)
    rows = _timed_rows("m", t, 3)  # t, t + 1 s, t + 2 s

    def pending(mark: datetime | None, rows: list[WireRow] = rows) -> _Pending:
        return _Pending(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), rows, None, mark)  # type: ignore[arg-type]

    assert _reaches_back(pending(None))  # no mark: not known
    assert _reaches_back(pending(t))  # its first call is the mark: a re-send
    assert _reaches_back(pending(t + timedelta(seconds=5)))
    assert not _reaches_back(pending(t - timedelta(microseconds=1)))
    assert _reaches_back(pending(t, rows=[]))  # nothing to check, and no error
