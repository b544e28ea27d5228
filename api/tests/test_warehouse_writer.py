"""The warehouse pool and writer: busy is 429, unreachable is 503, only transient errors are retried."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

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


def _rows(machine_id: str, count: int) -> list[RequestRow]:
    return [RequestRow.model_validate(row(machine_id)) for _ in range(count)]


def test_concurrent_batches_share_one_insert_and_are_deduplicated(warehouse) -> None:
    workspace, device = uuid.uuid4(), uuid.uuid4()
    first, second, third = _rows("m", 30), _rows("m", 20), _rows("m", 10)

    async def main() -> list[list[RequestRow]]:
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
