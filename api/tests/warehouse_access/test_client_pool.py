"""The warehouse pool: busy is 429, unreachable is 503, only transient errors are retried."""

from __future__ import annotations

import asyncio
import threading

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from halton_api.warehouse_access.batch_writer import WarehouseWriter
from halton_api.warehouse_access.client_pool import (
    WarehouseBusy,
    WarehousePool,
    WarehouseUnavailable,
    classify,
    ping,
)


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
