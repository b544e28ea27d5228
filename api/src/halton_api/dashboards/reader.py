"""How dashboards reach the marts: a warehouse pool of their own (so pages never queue behind ingestion's
inserts) and the database names, with transient failures retried like every warehouse call."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_api.warehouse_access.client_pool import WarehouseError, WarehousePool
from halton_warehouse import Databases

T = TypeVar("T")
MISSING_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE
MARTS_RETRY_AFTER = 60
MAX_CACHED = 10_000  # entries; cleared whole when exceeded (a bound, not an eviction policy)


class MartsNotBuilt(WarehouseError):
    """The marts a page reads do not exist yet (no dbt build has run on this warehouse)."""

    status_code = 503


@dataclass(frozen=True)
class Marts:
    """Names a query needs: the marts database (and raw, for what only raw holds)."""

    marts: str
    raw: str

    @classmethod
    def of(cls, databases: Databases) -> Marts:
        return cls(marts=databases.marts, raw=databases.raw)


class MartsReader:
    def __init__(self, pool: WarehousePool, databases: Databases, *, retries: int) -> None:
        self.pool = pool
        self.names = Marts.of(databases)
        self.retries = retries
        self._cache: dict[Hashable, tuple[float, Any]] = {}

    async def cached(self, key: Hashable, ttl: float, query: Callable[[Client, Marts], T]) -> T:
        """`run`, remembering the answer for `ttl` seconds: for what every page shows and seldom changes (the
        rail's model list), so each page view does not pay a round trip for it. The marts change only when
        dbt runs, every few minutes at most."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        value = await self.run(query)
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now, value)
        return value

    async def run(self, query: Callable[[Client, Marts], T]) -> T:
        """`query(client, names)` in a worker thread; `WarehouseError` when the warehouse stays unreachable."""
        names = self.names
        try:
            return await self.pool.run_with_retries(lambda client: query(client, names), retries=self.retries)
        except DatabaseError as error:
            if getattr(error, "code", None) not in MISSING_CODES and "UNKNOWN_TABLE" not in str(error):
                raise
            raise MartsNotBuilt(
                "the dashboards' marts are not built yet: Dagster builds them after the first batches arrive "
                "(or run `uv run halton-dbt build`)",
                MARTS_RETRY_AFTER,
            ) from error
