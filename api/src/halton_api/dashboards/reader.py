"""How dashboards reach the marts: a warehouse pool of their own (so pages never queue behind ingestion's
inserts) and the database names, with transient failures retried like every warehouse call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from halton_api.warehouse_writer import WarehouseError, WarehousePool
from halton_warehouse import Databases

T = TypeVar("T")
MISSING_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE
MARTS_RETRY_AFTER = 60


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
