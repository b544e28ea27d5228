"""The one writer of `raw.requests` from the API: batches queued, grouped into one INSERT each, checked for
rows the workspace already has only when they may hold some, each batch answered all or nothing."""

from __future__ import annotations

import asyncio
import decimal
import functools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.batch_decoding import FIELD, WireRow
from halton_api.warehouse_access.client_pool import (
    BUSY_RETRY_AFTER,
    UNAVAILABLE_RETRY_AFTER,
    WarehouseBusy,
    WarehousePool,
    WarehouseUnavailable,
)
from halton_api.warehouse_access.native_blocks import BlockEncoder
from halton_api.warehouse_access.raw_requests import ProbeScope, existing_uids, stored_prices
from halton_warehouse import Databases

log = logging.getLogger(__name__)

T = TypeVar("T")

# UUIDs per probe query (`existing_uids`). A group commit's probe is one query (20 ms of warehouse CPU for
# 16,000 UUIDs, against 3 x 15 ms in 6,000-UUID pieces), so a long one raises max_query_size for itself.
PROBE_CHUNK = 50_000


@dataclass(eq=False)
class _Pending:
    """One accepted-for-writing batch waiting for the next INSERT."""

    workspace_id: UUID
    device_id: UUID
    batch_id: UUID
    rows: list[WireRow]
    future: asyncio.Future[list[WireRow]]
    # The device's mark when the batch arrived (`WarehouseWriter.write_batch`).
    written_through: datetime | None = None
    # `rows` as a Native block (`BlockEncoder.block`), when encoded on arrival.
    block: bytes | None = None
    taken: bool = False  # picked up by a flusher: it will be answered by the INSERT's outcome


RecordWritten = Callable[[dict[UUID, datetime]], Awaitable[None]]


class WarehouseWriter:
    """The one writer of `raw.requests` from the API, with group commit.

    Batches that arrive while an INSERT is running are combined into the next one: one INSERT for all of
    them (and one dedupe query per workspace, for those that need it), so a busy warehouse gets fewer, larger
    parts (ClickHouse pays per insert, not per row) and an idle one gets each batch at once. Each batch still
    succeeds or fails as a whole: if the combined INSERT fails, every batch in it gets the error and nothing
    is acknowledged. Start it with `start()` and stop it with `close()`, which writes what is queued first.

    One flusher by default: with two, each takes what arrived while the other was writing, so groups
    are half the size and the warehouse spends about 1.5 times the CPU per row (bench/ingest.py, 4 and 16
    meters: 20k and 27k rows/s with two flushers, 26k and 35k with one, and lower latency too).

    `record_written` stores each device's mark (`write_batch`) once its rows are written, before the batches
    are answered; without it (tests of the writer alone) marks are not kept.
    """

    def __init__(
        self,
        pool: WarehousePool,
        databases: Databases,
        *,
        retries: int = 2,
        flushers: int = 1,
        max_rows_per_insert: int = 50_000,
        queue_timeout: float = 5.0,
        record_written: RecordWritten | None = None,
    ) -> None:
        self.pool = pool
        self.databases = databases
        self.retries = retries
        self.flushers = flushers
        self.max_rows_per_insert = max_rows_per_insert
        self.queue_timeout = queue_timeout
        self.record_written = record_written
        self._encoder: BlockEncoder | None = None
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._warm_up: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        if not self._tasks:
            # Warm up in the background: the encoder needs the table's column types (a DESCRIBE) and
            # clickhouse-connect's one-time optional imports (pandas), which would otherwise land on the first
            # meter's batch.
            self._warm_up = asyncio.create_task(self._prepare(), name="warehouse-warm-up")
            self._tasks = [
                asyncio.create_task(self._flush_loop(), name=f"warehouse-flush-{i}")
                for i in range(self.flushers)
            ]

    async def _prepare(self) -> None:
        try:
            await self._block_encoder(retries=0)
        except Exception as error:  # the warehouse may come up later; the first INSERT then pays instead
            log.info("warehouse warm-up skipped: %s", error)

    async def _block_encoder(self, *, retries: int) -> BlockEncoder:
        """The encoder of `raw.requests` blocks, made on first use from the table's column types."""
        if self._encoder is None:
            table = f"{self.databases.raw}.requests"
            self._encoder = await self.pool.run_with_retries(
                lambda client: BlockEncoder.describe(client, table), retries=retries
            )
        return self._encoder

    async def close(self) -> None:
        """Write every queued batch, then stop (called on shutdown, before the pool closes)."""
        if self._warm_up is not None:
            await asyncio.gather(self._warm_up, return_exceptions=True)
        self._closing = True
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def write_batch(
        self,
        *,
        workspace_id: UUID,
        device_id: UUID,
        batch_id: UUID,
        rows: list[WireRow],
        written_through: datetime | None = None,
    ) -> list[WireRow]:
        """Store a batch's rows (unique `request_uid`s) all or none; returns those the workspace did not have.

        `written_through` is the device's mark: the latest start of its rows the warehouse is known to have.
        A meter sends each call once, oldest first, so a batch that starts after the mark holds none of the
        workspace's rows and is written without asking the warehouse first (under load that question cost as
        much warehouse CPU as the INSERT; bench/RESULTS.md, "Ingestion"). A batch reaching back to the mark (a
        re-send, a late call) or without one is checked row by row, and rows the workspace has are left out
        and counted as duplicates. A copy sent again before the first copy's answer (so before its mark)
        may be written twice: the ReplacingMergeTree key and the deduplicated reads absorb it.
        """
        if self._closing or not self._tasks:
            raise WarehouseUnavailable("the API is shutting down", UNAVAILABLE_RETRY_AFTER)
        future: asyncio.Future[list[WireRow]] = asyncio.get_running_loop().create_future()
        # Encoded now, while the INSERT before it runs, so that its own INSERT only joins bytes.
        block = self._encoder.block(workspace_id, device_id, batch_id, rows) if self._encoder else None
        item = _Pending(workspace_id, device_id, batch_id, rows, future, written_through, block)
        self._pending.append(item)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.queue_timeout)
        except TimeoutError:
            if item.taken:  # being written now: its outcome is the answer
                return await future
            future.cancel()  # still queued: drop it and tell the meter to come back
            raise WarehouseBusy(
                f"the warehouse is busy: the batch waited over {self.queue_timeout:g}s to be written",
                BUSY_RETRY_AFTER,
            ) from None

    async def _flush_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            items = self._take()
            if not items:
                continue
            try:
                fresh = await self._store(items)
            except Exception as error:  # every batch of the failed INSERT hears why
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
            else:
                for item, rows in zip(items, fresh, strict=True):
                    if not item.future.done():
                        item.future.set_result(rows)

    def _take(self) -> list[_Pending]:
        """Queued batches for one INSERT: at least one, at most `max_rows_per_insert` rows unless one is larger."""
        items: list[_Pending] = []
        total = 0
        while self._pending and (not items or total + len(self._pending[0].rows) <= self.max_rows_per_insert):
            item = self._pending.popleft()
            if item.future.done():  # the client went away, or gave up waiting
                continue
            item.taken = True
            items.append(item)
            total += len(item.rows)
        return items

    async def _store(self, items: list[_Pending]) -> list[list[WireRow]]:
        """Write the batches' rows the workspace does not have, then their devices' marks; returns the rows
        written, batch by batch."""
        fresh = _first_copies(items)
        reaching = [i for i, item in enumerate(items) if _reaches_back(item)]
        if reaching:
            stored = await self._stored([items[i] for i in reaching], [fresh[i] for i in reaching])
            fresh = _less(items, fresh, stored)
        await self._write(items, fresh)
        await self._record(items)
        return fresh

    async def _write(self, items: list[_Pending], rows: list[list[WireRow]]) -> None:
        """One INSERT of the batches' `rows` (none when they are empty): a Native block per batch, the one
        encoded on arrival unless rows were taken out of it since."""
        encoder = await self._block_encoder(retries=self.retries)
        blocks: list[bytes] = []
        for item, kept in zip(items, rows, strict=True):
            if not kept:
                continue
            block = item.block
            if block is None or len(kept) < len(item.rows):  # `kept` is `item.rows` or a part of it
                block = encoder.block(item.workspace_id, item.device_id, item.batch_id, kept)
            blocks.append(block)
        if blocks:
            body = b"".join(blocks)
            await self.with_retries(lambda client: encoder.insert(client, body))

    async def _record(self, items: list[_Pending]) -> None:
        """Move the devices' marks to the latest start of their batches: every row of them is stored now."""
        if self.record_written is None:
            return
        marks: dict[UUID, datetime] = {}
        for item in items:
            if item.rows:
                latest = max(map(FIELD["started_at"], item.rows))
                marks[item.device_id] = max(latest, marks.get(item.device_id, latest))
        try:
            await self.record_written(marks)
        except Exception:  # the rows are stored: without the marks, the next batches are only checked
            log.warning("could not record how far %d device(s) are written", len(marks), exc_info=True)

    async def _stored(self, items: list[_Pending], first: list[list[WireRow]]) -> dict[UUID, set[UUID]]:
        """Per workspace, which of these rows' request_uids it already has."""
        by_workspace: dict[UUID, list[_Pending]] = {}
        uids: dict[UUID, list[UUID]] = {}
        for item, rows in zip(items, first, strict=True):
            by_workspace.setdefault(item.workspace_id, []).append(item)
            uids.setdefault(item.workspace_id, []).extend(map(FIELD["request_uid"], rows))
        stored: dict[UUID, set[UUID]] = {}
        for workspace_id, asked in uids.items():
            scope = _scope(by_workspace[workspace_id])
            stored[workspace_id] = found = set()
            for start in range(0, len(asked), PROBE_CHUNK):
                found |= await self.with_retries(
                    functools.partial(
                        existing_uids,
                        databases=self.databases,
                        workspace_id=workspace_id,
                        uids=asked[start : start + PROBE_CHUNK],
                        scope=scope,
                    )
                )
            if found:
                sent = [
                    rows for item, rows in zip(items, first, strict=True) if item.workspace_id == workspace_id
                ]
                found -= await self._corrections(workspace_id, scope, found, sent)
        return stored

    async def _corrections(
        self,
        workspace_id: UUID,
        scope: ProbeScope,
        found: set[UUID],
        batches: list[list[WireRow]],
    ) -> set[UUID]:
        """Of the rows the workspace has, those sent again with another cost or price card: a meter priced the
        call again (an unpriced call, once a catalogue knew its model). They are written, not counted as
        duplicates; the newer copy wins on every read (ReplacingMergeTree on ingested_at)."""
        sent = {
            row.request_uid: (row.cost_usd, row.price_card)
            for rows in batches
            for row in rows
            if row.request_uid in found
        }
        asked = list(sent)
        held: dict[UUID, tuple[decimal.Decimal | None, str | None]] = {}
        for start in range(0, len(asked), PROBE_CHUNK):
            held |= await self.with_retries(
                functools.partial(
                    stored_prices,
                    databases=self.databases,
                    workspace_id=workspace_id,
                    uids=asked[start : start + PROBE_CHUNK],
                    scope=scope,
                )
            )
        return {uid for uid, price in sent.items() if uid in held and held[uid] != price}

    async def with_retries(self, operation: Callable[[Client], T]) -> T:
        """Run `operation` through the pool, retrying transient failures with a short backoff."""
        return await self.pool.run_with_retries(operation, retries=self.retries)


def _reaches_back(item: _Pending) -> bool:
    """Whether the batch may hold rows the workspace has: it starts at or before its device's mark, or the
    device has none."""
    mark = item.written_through
    return mark is None or min(map(FIELD["started_at"], item.rows), default=mark) <= mark


def _first_copies(items: list[_Pending]) -> list[list[WireRow]]:
    """Each batch's rows less those an earlier batch of the group from the same device also has: racing copies
    of a batch are written once, and the later copy's rows count as duplicates. Only a device's own batches
    can share rows (a token sends only its machine's rows, and the machine is part of the table's key), so a
    group with one batch per device, the usual one, builds no set at all."""
    seen: dict[UUID, set[UUID]] = {}
    remaining = Counter(item.device_id for item in items)
    first: list[list[WireRow]] = []
    for item in items:
        taken = seen.setdefault(item.device_id, set())
        rows = [row for row in item.rows if row.request_uid not in taken] if taken else item.rows
        remaining[item.device_id] -= 1
        if remaining[item.device_id]:  # a later batch of the device follows
            taken.update(map(FIELD["request_uid"], rows))
        first.append(rows)
    return first


def _less(
    items: list[_Pending], first: list[list[WireRow]], stored: dict[UUID, set[UUID]]
) -> list[list[WireRow]]:
    """Each batch's rows less those its workspace already had."""
    return [
        [row for row in rows if row.request_uid not in known]
        if (known := stored.get(item.workspace_id))
        else rows
        for item, rows in zip(items, first, strict=True)
    ]


def _scope(items: Sequence[_Pending]) -> ProbeScope:
    """Where the batches' rows may already be stored: their UTC days, and each machine's first and last start."""
    days: set[date] = set()
    windows: dict[str, tuple[datetime, datetime]] = {}
    for machine, rows in _by_machine(items):
        first, last = min(map(FIELD["started_at"], rows)), max(map(FIELD["started_at"], rows))
        first_day, last_day = first.astimezone(UTC).date(), last.astimezone(UTC).date()
        if first_day == last_day:  # the common case, without converting every row's time
            days.add(first_day)
        else:
            days.update(row.started_at.astimezone(UTC).date() for row in rows)
        if machine in windows:
            first, last = min(first, windows[machine][0]), max(last, windows[machine][1])
        windows[machine] = (first, last)
    return ProbeScope(frozenset(days), windows)


def _by_machine(items: Sequence[_Pending]) -> Iterator[tuple[str, Sequence[WireRow]]]:
    """Each batch's rows by machine: the whole batch at once, as a meter's batch holds only its machine's rows
    (`parse_batch` checks that against the token)."""
    for item in items:
        machines = set(map(FIELD["machine_id"], item.rows))
        if len(machines) == 1:
            yield machines.pop(), item.rows
        else:
            for machine in machines:
                yield machine, [row for row in item.rows if row.machine_id == machine]
