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
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from clickhouse_connect.driver.common import write_array
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.insert import InsertContext

from halton_api.batch_decoding import FIELD, WireRow
from halton_api.store.requests import ProbeScope, existing_uids
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

# Columns of raw.requests the writer fills, in order (ingested_at: each INSERT's stamp, see `_store`).
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
    "ingested_at",
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
    taken: bool = False  # picked up by a flusher: it will be answered by the INSERT's outcome


class WarehouseWriter:
    """The one writer of `raw.requests` from the API, with group commit.

    Batches that arrive while an INSERT is running are combined into the next one: one dedupe query per
    workspace and one INSERT for all of them, so a busy warehouse gets fewer, larger parts (ClickHouse
    pays per insert, not per row) and an idle one gets each batch at once. Each batch still succeeds or
    fails as a whole: if the combined INSERT fails, every batch in it gets the error and nothing is
    acknowledged. Start it with `start()` and stop it with `close()`, which writes what is queued first.

    One flusher by default: with two, each takes what arrived while the other was writing, so groups
    are half the size and the warehouse spends about 1.5 times the CPU per row (bench/ingest.py, 4 and 16
    meters: 20k and 27k rows/s with two flushers, 26k and 35k with one, and lower latency too).
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
    ) -> None:
        self.pool = pool
        self.databases = databases
        self.retries = retries
        self.flushers = flushers
        self.max_rows_per_insert = max_rows_per_insert
        self.queue_timeout = queue_timeout
        self._insert_contexts: weakref.WeakKeyDictionary[Client, InsertContext] = weakref.WeakKeyDictionary()
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._warm_up: asyncio.Task[None] | None = None
        self._closing = False
        self._last_stamp: datetime | None = None
        self._written = _WrittenUntil()

    async def start(self) -> None:
        if not self._tasks:
            # Warm up in the background: the first insert context costs a DESCRIBE and clickhouse-connect's
            # one-time optional imports (pandas), which would otherwise land on the first meter's batch.
            self._warm_up = asyncio.create_task(self._prepare(), name="warehouse-warm-up")
            self._tasks = [
                asyncio.create_task(self._flush_loop(), name=f"warehouse-flush-{i}")
                for i in range(self.flushers)
            ]

    async def _prepare(self) -> None:
        try:
            await self.pool.run(self._insert_context)
        except Exception as error:  # the warehouse may come up later; the first batch then pays instead
            log.info("warehouse warm-up skipped: %s", error)

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
        self, *, workspace_id: UUID, device_id: UUID, batch_id: UUID, rows: list[WireRow]
    ) -> list[WireRow]:
        """Store a batch's rows (unique `request_uid`s) all or none; returns those the workspace did not have."""
        if self._closing or not self._tasks:
            raise WarehouseUnavailable("the API is shutting down", UNAVAILABLE_RETRY_AFTER)
        future: asyncio.Future[list[WireRow]] = asyncio.get_running_loop().create_future()
        item = _Pending(workspace_id, device_id, batch_id, rows, future)
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
        """Write the batches' rows the workspace does not have; returns them, batch by batch.

        A meter sends each call once, oldest first, so a batch whose every machine window starts after what
        this writer last wrote for that machine is almost certainly new: its INSERT then does not wait for the
        dedupe probe but runs beside it. A row the workspace did have is then written again, which the table
        absorbs (ReplacingMergeTree on the row's key; every read deduplicates, FINAL), and is still counted as
        a duplicate. The probe must not count this INSERT's own rows, which it may or may not see: each INSERT
        stamps its rows' ingested_at with a moment no earlier INSERT of this writer used, and the probe leaves
        that moment out. One after the other, probe and INSERT were ~40 + ~40 ms of a group commit's ~90
        under load (bench/RESULTS.md, "Ingestion"). A batch reaching back to rows this writer wrote (a re-send,
        a late row) or from a machine it has not written for since it started is probed first, so its
        duplicates are not written again.
        """
        stamp = self._next_stamp()
        first = _first_copies(items)
        by_workspace: dict[UUID, list[_Pending]] = {}
        for item in items:
            by_workspace.setdefault(item.workspace_id, []).append(item)
        scopes = {workspace_id: _scope(group) for workspace_id, group in by_workspace.items()}
        probing = self._stored(items, first, scopes, stamp)
        if self._written.reaches_back(scopes):
            fresh = _less(items, first, await probing)
            await self._write(items, fresh, stamp)
        else:
            # Both run to their end before the group is answered (no INSERT outlives its group), then the
            # first failure fails the group.
            inserted, stored = await asyncio.gather(
                self._write(items, first, stamp), probing, return_exceptions=True
            )
            for outcome in (inserted, stored):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(stored, dict)
            fresh = _less(items, first, stored)
        self._written.remember(scopes)
        return fresh

    async def _write(self, items: list[_Pending], rows: list[list[WireRow]], stamp: datetime) -> None:
        """One INSERT of the batches' `rows` (none when they are empty), stamped `stamp`."""
        columns = _columns(items, rows, stamp)
        if columns[0]:
            await self.with_retries(lambda client: self._insert(client, columns))

    async def _stored(
        self,
        items: list[_Pending],
        first: list[list[WireRow]],
        scopes: dict[UUID, ProbeScope],
        stamp: datetime,
    ) -> dict[UUID, set[UUID]]:
        """Per workspace, which of these rows' request_uids it had before this INSERT (stamped `stamp`)."""
        uids: dict[UUID, list[UUID]] = {}
        for item, rows in zip(items, first, strict=True):
            uids.setdefault(item.workspace_id, []).extend(map(FIELD["request_uid"], rows))
        stored: dict[UUID, set[UUID]] = {}
        for workspace_id, asked in uids.items():
            stored[workspace_id] = found = set()
            for start in range(0, len(asked), PROBE_CHUNK):
                found |= await self.with_retries(
                    functools.partial(
                        existing_uids,
                        databases=self.databases,
                        workspace_id=workspace_id,
                        uids=asked[start : start + PROBE_CHUNK],
                        scope=scopes[workspace_id],
                        excluding=stamp,
                    )
                )
        return stored

    def _next_stamp(self) -> datetime:
        """Now, to the millisecond (as DateTime64(3) stores it), and later than any stamp this writer gave."""
        now = datetime.now(UTC)
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_stamp is not None and stamp <= self._last_stamp:
            stamp = self._last_stamp + _MILLISECOND
        self._last_stamp = stamp
        return stamp

    def _insert_context(self, client: Client) -> InsertContext:
        # An insert context carries the table's column types: reusing it saves a DESCRIBE round trip per batch.
        context = self._insert_contexts.get(client)
        if context is None:
            context = client.create_insert_context(
                f"{self.databases.raw}.requests", column_names=list(REQUEST_COLUMNS), column_oriented=True
            )
            context.column_types = [_faster_type(column_type) for column_type in context.column_types]
            self._insert_contexts[client] = context
        return context

    def _insert(self, client: Client, columns: Sequence[Sequence[Any]]) -> None:
        context = self._insert_context(client)
        context.data = columns
        try:
            client.insert(context=context)
        finally:
            context.data = None

    async def with_retries(self, operation: Callable[[Client], T]) -> T:
        """Run `operation` through the pool, retrying transient failures with a short backoff."""
        return await self.pool.run_with_retries(operation, retries=self.retries)


_CONSTANT_COLUMNS = ("workspace_id", "device_id", "batch_id")


def _columns(items: list[_Pending], fresh: list[list[WireRow]], stamp: datetime) -> list[list[Any]]:
    """The rows to insert, column by column in `REQUEST_COLUMNS` order; workspace, device and batch come
    from each batch's token and envelope, never from its rows, and ingested_at is the INSERT's `stamp`."""
    # One list per column read by a C getter: no per-row tuples, which would cost a transposition and,
    # with a thousand rows a batch, young-generation garbage collections.
    every_row = [row for batch in fresh for row in batch]
    columns: list[list[Any]] = []
    for column in REQUEST_COLUMNS:
        if column in _CONSTANT_COLUMNS:
            columns.append(
                _Runs([(getattr(item, column), len(rows)) for item, rows in zip(items, fresh, strict=True)])
            )
        elif column == "ingested_at":
            columns.append(_Runs([(stamp, len(every_row))]))
        else:
            columns.append(list(map(FIELD[column], every_row)))
    return columns


def _first_copies(items: list[_Pending]) -> list[list[WireRow]]:
    """Each batch's rows less those an earlier batch of the group (same workspace) also has: racing copies of a
    batch are written once, and the later copy's rows count as duplicates."""
    seen: dict[UUID, set[UUID]] = {}
    remaining = Counter(item.workspace_id for item in items)
    first: list[list[WireRow]] = []
    for item in items:
        taken = seen.setdefault(item.workspace_id, set())
        rows = [row for row in item.rows if row.request_uid not in taken] if taken else item.rows
        remaining[item.workspace_id] -= 1
        if remaining[item.workspace_id]:  # a later batch of the workspace follows
            taken.update(map(FIELD["request_uid"], rows))
        first.append(rows)
    return first


def _less(
    items: list[_Pending], first: list[list[WireRow]], stored: dict[UUID, set[UUID]]
) -> list[list[WireRow]]:
    """Each batch's rows less those its workspace already had."""
    return [
        [row for row in rows if row.request_uid not in known]
        if (known := stored[item.workspace_id])
        else rows
        for item, rows in zip(items, first, strict=True)
    ]


class _WrittenUntil:
    """The latest start this writer has written per (workspace, machine): what a new batch must start after
    to be written without waiting for its dedupe probe (`WarehouseWriter._store`). Bounded: past `limit`
    machines it starts afresh, and each machine's next batch is then probed first once more."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._until: dict[tuple[UUID, str], datetime] = {}

    def reaches_back(self, scopes: dict[UUID, ProbeScope]) -> bool:
        """Whether a window starts at or before what was written for its machine, or the machine is unknown."""
        for workspace_id, scope in scopes.items():
            for machine, (first, _) in scope.windows.items():
                until = self._until.get((workspace_id, machine))
                if until is None or first <= until:
                    return True
        return False

    def remember(self, scopes: dict[UUID, ProbeScope]) -> None:
        for workspace_id, scope in scopes.items():
            for machine, (_, last) in scope.windows.items():
                key = (workspace_id, machine)
                if len(self._until) >= self._limit and key not in self._until:
                    self._until.clear()
                self._until[key] = max(last, self._until.get(key, last))


class _Runs(list):
    """A column that holds one value per batch (or INSERT): the values, plus the (value, count) runs they
    repeat, so the encoder can write each value once (`_UUIDColumn`, `_DateTime64Column`)."""

    def __init__(self, runs: Iterable[tuple[Any, int]]) -> None:
        self.runs = [(value, count) for value, count in runs if count]
        super().__init__()
        for value, count in self.runs:
            self += [value] * count


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
        elif isinstance(column, _Runs):
            for value, count in column.runs:
                dest += _uuid_block(value) * count
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
        if isinstance(column, _Runs):
            for value, count in column.runs:
                dest += ((value - _EPOCH) // _MILLISECOND).to_bytes(8, "little", signed=True) * count
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
