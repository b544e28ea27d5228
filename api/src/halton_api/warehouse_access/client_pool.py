"""The API's one way into the warehouse: a small pool of clickhouse-connect clients, and the errors that say
whether to come back.

clickhouse-connect clients are synchronous and must not run two queries at once (a client owns an HTTP
session), so the pool lends each concurrent operation its own client and runs it in a worker thread.
The pool's size bounds the queries in flight: a caller that waits longer than the queue timeout for a
client is told the warehouse is busy (429), and a warehouse that cannot be reached after the retries
is unavailable (503). Only errors known to be transient are retried; inserts are safe to retry because
`raw.requests` is idempotent on its key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import urllib3
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from halton_warehouse import connect

log = logging.getLogger(__name__)

T = TypeVar("T")

# ClickHouse error codes that mean "not now" rather than "never": overload, timeouts, the network.
BUSY_CODES = frozenset({202, 203, 241, 252, 439})  # TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION,
# MEMORY_LIMIT_EXCEEDED, TOO_MANY_PARTS, CANNOT_SCHEDULE_TASK
UNAVAILABLE_CODES = frozenset({159, 209, 210, 242, 319, 425})  # TIMEOUT_EXCEEDED, SOCKET_TIMEOUT,
# NETWORK_ERROR, TABLE_IS_READ_ONLY, UNKNOWN_STATUS_OF_INSERT, SYSTEM_ERROR
BUSY_RETRY_AFTER = 2
UNAVAILABLE_RETRY_AFTER = 10


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
