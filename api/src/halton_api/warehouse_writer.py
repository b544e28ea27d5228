"""The API's one way into the warehouse: a small pool of clickhouse-connect clients and the batch writer.

clickhouse-connect clients are synchronous and must not run two queries at once (a client owns an HTTP
session), so the pool lends each concurrent operation its own client and runs it in a worker thread.
The pool's size bounds the queries in flight: a caller that waits longer than the queue timeout for a
client is told the warehouse is busy (429), and a warehouse that cannot be reached after the retries
is unavailable (503). Only errors known to be transient are retried; inserts are safe to retry because
`raw.requests` is idempotent on its key.
"""

from __future__ import annotations

import array
import asyncio
import decimal
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import anyio
import urllib3
from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.numeric import Decimal as DecimalType
from clickhouse_connect.datatypes.special import UUID as UUIDType
from clickhouse_connect.datatypes.temporal import DateTime64 as DateTime64Type
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.common import write_array, write_leb128
from clickhouse_connect.driver.compression import get_compressor
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.insert import InsertContext

from halton_api.batch_decoding import FIELD, WireRow
from halton_api.store.requests import ProbeScope, existing_uids, stored_prices
from halton_warehouse import Databases, connect

log = logging.getLogger(__name__)

T = TypeVar("T")

# ClickHouse error codes that mean "not now" rather than "never": overload, timeouts, the network.
BUSY_CODES = frozenset({202, 203, 241, 252, 439})  # TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION,
# MEMORY_LIMIT_EXCEEDED, TOO_MANY_PARTS, CANNOT_SCHEDULE_TASK
UNAVAILABLE_CODES = frozenset({159, 209, 210, 242, 319, 425})  # TIMEOUT_EXCEEDED, SOCKET_TIMEOUT,
# NETWORK_ERROR, TABLE_IS_READ_ONLY, UNKNOWN_STATUS_OF_INSERT, SYSTEM_ERROR
# UUIDs per probe query (`existing_uids`). A group commit's probe is one query (20 ms of warehouse CPU for
# 16,000 UUIDs, against 3 x 15 ms in 6,000-UUID pieces), so a long one raises max_query_size for itself.
PROBE_CHUNK = 50_000
BUSY_RETRY_AFTER = 2
UNAVAILABLE_RETRY_AFTER = 10

# Columns of raw.requests the writer fills, in order (ingested_at is the table's default: the warehouse's clock).
REQUEST_COLUMNS: tuple[str, ...] = (
    "workspace_id",
    "device_id",
    "request_uid",
    "machine_id",
    "batch_id",
    "started_at",
    "ended_at",
    "provider",
    "model_requested",
    "model_served",
    "endpoint",
    "status_code",
    "streamed",
    "complete",
    "service_tier",
    "batch",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_card",
    "project",
    "attribution_tier",
    "prompt_hash",
    "provider_request_id",
    "latency_ms",
    "ttfb_ms",
    "region",
    "web_search_requests",
    "repository",
    "branch",
    "ticket",
    "tool",
    "tool_version",
)


class WarehouseError(RuntimeError):
    """The warehouse cannot take this operation now; retry after `retry_after` seconds."""

    status_code = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WarehouseBusy(WarehouseError):
    status_code = 429


class WarehouseUnavailable(WarehouseError):
    status_code = 503


def classify(error: Exception) -> type[WarehouseError] | None:
    """Which transient failure `error` is, or None when retrying cannot help."""
    if isinstance(error, WarehouseError):
        return type(error)
    if isinstance(error, DatabaseError):
        code = getattr(error, "code", None)
        if code in BUSY_CODES:
            return WarehouseBusy
        if code in UNAVAILABLE_CODES or (code is None and isinstance(error, OperationalError)):
            return WarehouseUnavailable
    if isinstance(error, (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError)):
        return WarehouseUnavailable
    return None


class WarehousePool:
    """Lends one clickhouse-connect client per concurrent operation, created on first use."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        queue_timeout: float,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Client] = []
        self._queue_timeout = queue_timeout
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False

    async def run(self, operation: Callable[[Client], T]) -> T:
        """Run `operation(client)` in a worker thread with a client of its own."""
        if self._closed:
            raise WarehouseUnavailable("the API is shutting down", UNAVAILABLE_RETRY_AFTER)
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
        except TimeoutError:
            raise WarehouseBusy(
                f"the warehouse is busy: no connection free within {self._queue_timeout:g}s", BUSY_RETRY_AFTER
            ) from None
        self._in_flight += 1
        self._drained.clear()
        client = self._idle.pop() if self._idle else None
        try:
            # Abandon (not wait for) a thread whose caller gave up, e.g. a health check's timeout: its
            # client is then simply dropped.
            client, result = await anyio.to_thread.run_sync(
                self._call, client, operation, abandon_on_cancel=True
            )
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()
            self._slots.release()
        self._idle.append(client)
        return result

    async def run_with_retries(self, operation: Callable[[Client], T], *, retries: int) -> T:
        """`run`, retrying transient failures with a short backoff; raises a `WarehouseError` when they last."""
        attempt = 0
        while True:
            try:
                return await self.run(operation)
            except Exception as error:
                kind = classify(error)
                if kind is None:
                    raise
                if attempt >= retries or (kind is WarehouseBusy and isinstance(error, WarehouseBusy)):
                    log.warning("warehouse %s after %d attempt(s): %s", kind.__name__, attempt + 1, error)
                    if isinstance(error, WarehouseError):
                        raise
                    retry_after = BUSY_RETRY_AFTER if kind is WarehouseBusy else UNAVAILABLE_RETRY_AFTER
                    raise kind(_describe(kind), retry_after) from error
                attempt += 1
                log.info("transient warehouse error (attempt %d), retrying: %s", attempt, error)
                await asyncio.sleep(0.2 * 2**attempt)

    def _call(self, client: Client | None, operation: Callable[[Client], T]) -> tuple[Client, T]:
        if client is None:
            client = connect(self.url)
            if hasattr(client, "timeout"):
                client.timeout = self._timeout
        try:
            return client, operation(client)
        except Exception:
            # A client that failed may hold a broken connection: start the next operation afresh.
            _close_quietly(client)
            raise

    async def close(self, timeout: float = 30.0) -> None:
        """Wait for operations in flight (so no accepted batch is cut short), then close every client."""
        self._closed = True
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            log.warning("closing the warehouse pool with %d operation(s) still running", self._in_flight)
        while self._idle:
            _close_quietly(self._idle.pop())


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
    # `rows` as a Native block (`_BlockEncoder.block`), when encoded on arrival.
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
        self._encoder: _BlockEncoder | None = None
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

    async def _block_encoder(self, *, retries: int) -> _BlockEncoder:
        """The encoder of `raw.requests` blocks, made on first use from the table's column types."""
        if self._encoder is None:
            table = f"{self.databases.raw}.requests"
            self._encoder = await self.pool.run_with_retries(
                lambda client: _BlockEncoder.describe(client, table), retries=retries
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


class _BlockEncoder:
    """`raw.requests` rows as Native-format blocks, one per batch: an INSERT body is blocks one after the other
    (ClickHouse squashes them into one part), so each batch is encoded once, when it arrives, and the INSERT
    only joins them. Workspace, device and batch id come from each batch's token and envelope, never from its
    rows; ingested_at is left to the table's default, the warehouse's clock."""

    def __init__(self, table: str, context: InsertContext, compression: str | None) -> None:
        self.table = table
        self._context = context
        self._types = [_faster_type(column_type) for column_type in context.column_types]
        # Each column's name and type as a Native block spells them before its values.
        self._labels = [
            _leb_string(name) + _leb_string(column_type.insert_name)
            for name, column_type in zip(REQUEST_COLUMNS, self._types, strict=True)
        ]
        self._compression = compression

    @classmethod
    def describe(cls, client: Client, table: str) -> _BlockEncoder:
        """The encoder for `table` as the warehouse describes it, compressing as `client` sends inserts."""
        context = client.create_insert_context(
            table, column_names=list(REQUEST_COLUMNS), column_oriented=True
        )
        return cls(table, context, client.write_compression)

    def block(self, workspace_id: UUID, device_id: UUID, batch_id: UUID, rows: Sequence[WireRow]) -> bytes:
        """One Native block of a batch's `rows` (a frame of its own when the client compresses)."""
        block = bytearray()
        write_leb128(len(REQUEST_COLUMNS), block)
        write_leb128(len(rows), block)
        constants = {"workspace_id": workspace_id, "device_id": device_id, "batch_id": batch_id}
        for name, label, column_type in zip(REQUEST_COLUMNS, self._labels, self._types, strict=True):
            block += label
            value = constants.get(name)
            # One list per column read by a C getter: no per-row tuples, which would cost a transposition and,
            # with a thousand rows a batch, young-generation garbage collections.
            column = _Constant(value, len(rows)) if value is not None else list(map(FIELD[name], rows))
            self._context.start_column(name)
            column_type.write_column(column, block, self._context)
        # Frame by frame is what clickhouse-connect itself sends for an insert of many blocks.
        return bytes(get_compressor(self._compression).compress_block(block))

    def insert(self, client: Client, body: bytes) -> None:
        """INSERT the blocks in `body`."""
        client.raw_insert(self.table, REQUEST_COLUMNS, body, fmt="Native", compression=self._compression)


def _leb_string(text: str) -> bytes:
    """`text` as Native strings are written: its UTF-8 length as LEB128, then the bytes."""
    encoded = text.encode()
    length = bytearray()
    write_leb128(len(encoded), length)
    return bytes(length) + encoded


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


class _Constant(list):
    """A column of one value repeated (a batch's workspace, device or batch id), which the encoder writes
    once and repeats (`_UUIDColumn`)."""

    def __init__(self, value: Any, count: int) -> None:
        super().__init__([value] * count)
        self.value = value


# Faster Native encoders for the three column types of raw.requests that clickhouse-connect encodes one
# Python value at a time with arithmetic per value (measured on one core: of 3.6 ms per 1,000 rows for all
# columns, DateTime64 x2 took 1.3, Decimal 0.4, UUID x4 0.5; see bench/RESULTS.md, "Ingestion"). Each writes exactly the bytes
# clickhouse-connect writes for the values the writer sends (aware datetimes, validated Decimals, UUID
# objects); a test compares them on the same values. Every other column keeps clickhouse-connect's
# encoder, and so does any other parameterisation of these types.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class _UUIDColumn(UUIDType, registered=False):
    """UUIDs as 16-byte blocks: big-endian bytes with each 8-byte half reversed (ClickHouse's layout); a
    value repeated for a whole batch (workspace, device, batch id) is encoded once."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        if self.nullable or (column and not isinstance(column[0], UUID)):
            super()._write_column_binary(column, dest, ctx)
        elif isinstance(column, _Constant):
            dest += _uuid_block(column.value) * len(column)
        else:
            halves = array.array("Q", b"".join([value.bytes for value in column]))
            halves.byteswap()
            dest += halves.tobytes()


def _uuid_block(value: UUID) -> bytes:
    raw = value.bytes
    return raw[7::-1] + raw[15:7:-1]


class _DateTime64Column(DateTime64Type, registered=False):
    """DateTime64(3) from timezone-aware datetimes: whole milliseconds since the epoch by timedelta
    arithmetic (exact, where clickhouse-connect goes through a float timestamp per value)."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        if self.nullable or (column and not (isinstance(column[0], datetime) and column[0].tzinfo)):
            super()._write_column_binary(column, dest, ctx)
            return
        # A naive datetime among aware ones raises TypeError here: the INSERT fails rather than guess.
        write_array("q", [(value - _EPOCH) // _MILLISECOND for value in column], dest, ctx.column_name)


class _DecimalColumn(DecimalType, registered=False):
    """Decimal(18, 9) from Decimals: scaled by multiplication (clickhouse-connect formats each value
    to a string and parses it back first)."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: InsertContext) -> None:
        first = next((v for v in column if v is not None), None)
        if first is not None and not isinstance(first, decimal.Decimal):
            super()._write_column_binary(column, dest, ctx)
            return
        with decimal.localcontext() as context:
            context.prec = self.prec
            scale = decimal.Decimal(self._mult)
            write_array(self._array_type, [int(v * scale) if v else 0 for v in column], dest, ctx.column_name)


def _faster_type(column_type: ClickHouseType) -> ClickHouseType:
    """The faster encoder for `column_type` where there is one (see `_UUIDColumn`), else the type itself."""
    kind = type(column_type)
    if kind is UUIDType:
        return _UUIDColumn(column_type.type_def)
    if kind is DateTime64Type and column_type.prec == 1000:
        return _DateTime64Column(column_type.type_def)
    if kind is DecimalType and (column_type.prec, column_type.scale) == (18, 9):
        return _DecimalColumn(
            column_type.type_def, column_type.prec, column_type.byte_size * 8, column_type.scale
        )
    return column_type


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


def _describe(kind: type[WarehouseError]) -> str:
    if kind is WarehouseBusy:
        return "the warehouse is overloaded; retry shortly"
    return "the warehouse is unreachable or timed out; retry later"


def _close_quietly(client: Client) -> None:
    try:
        client.close()
    except Exception:  # closing is best effort; the client is dropped either way
        log.debug("closing a warehouse client failed", exc_info=True)


def ping(client: Client) -> float:
    """Round-trip a trivial query; returns the seconds it took."""
    started = time.perf_counter()
    client.command("SELECT 1")
    return time.perf_counter() - started
