"""What the warehouse holds for one machine of a workspace, for a meter to reconcile against its own rows.

Synchronous, taking a clickhouse-connect client: run through `WarehousePool.run`. Every query is bound to
the workspace and the machine of the sync token that asked (ingestion stamps each row with its device's
machine id, so a meter can never name another's rows), reads the deduplicated view, and stays inside the
sort key's prefix (workspace_id, day, machine_id) for a bounded range of days.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from decimal import Decimal
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.models import ReconcileDay
from halton_warehouse import Databases


def daily_totals(
    client: Client, *, databases: Databases, workspace_id: UUID, machine_id: str, first: date, last: date
) -> list[ReconcileDay]:
    """Rows and cost per UTC day from `first` to `last` (inclusive), oldest first; empty days left out."""
    result = client.query(
        "SELECT toDate(started_at) AS day, count() AS rows, sum(ifNull(cost_usd, toDecimal64(0, 9))) AS cost"
        f" FROM {databases.raw}.requests_dedup"
        " WHERE workspace_id = {ws:UUID} AND machine_id = {machine:String}"
        " AND toDate(started_at) BETWEEN {first:Date} AND {last:Date}"
        " GROUP BY day ORDER BY day",
        parameters={"ws": workspace_id, "machine": machine_id, "first": first, "last": last},
    )
    return [
        ReconcileDay(day=day, rows=rows, cost_usd=Decimal(cost)) for day, rows, cost in result.result_rows
    ]


def missing_uids(
    client: Client,
    *,
    databases: Databases,
    workspace_id: UUID,
    machine_id: str,
    day: date,
    uids: Collection[UUID],
) -> list[UUID]:
    """Which of `uids` the warehouse does not hold for this machine on `day` (UTC), in the order asked."""
    if not all(isinstance(uid, UUID) for uid in uids):
        raise TypeError("missing_uids takes UUID objects")
    # Inlined from typed UUIDs (no text a client wrote reaches the SQL): a plain IN list, bounded by
    # `reconcile_max_uids` so the query stays under ClickHouse's max_query_size; no table function needed.
    named = ",".join(f"'{uid}'" for uid in uids)
    body = client.raw_query(
        "SELECT DISTINCT request_uid"
        f" FROM {databases.raw}.requests_dedup"
        " WHERE workspace_id = {ws:UUID} AND machine_id = {machine:String}"
        f" AND toDate(started_at) = {{day:Date}} AND request_uid IN ({named})",
        parameters={"ws": workspace_id, "machine": machine_id, "day": day},
        fmt="TabSeparated",
    )
    held = {UUID(line) for line in body.decode().split()}
    return [uid for uid in dict.fromkeys(uids) if uid not in held]
