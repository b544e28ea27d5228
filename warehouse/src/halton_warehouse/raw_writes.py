"""Writes to the raw tables Dagster owns: catalogue rate rows, billing lines, control-plane snapshots.

Each writer takes a clickhouse-connect client and the database names, so assets (through the warehouse
resource), the demo loader and tests share one way of writing each table. Every write is safe to repeat:
the tables are ReplacingMergeTrees and staging reads them deduplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_meter.catalogue.rate_rows import RateRow
from halton_warehouse import Databases
from halton_warehouse.catalogue_rate_rows import RATE_ROW_COLUMNS, row_values

log = logging.getLogger(__name__)

# Control-plane tables copied into raw, with their columns in insert order (snapshot_at comes last).
SNAPSHOT_COLUMNS: dict[str, tuple[str, ...]] = {
    "workspaces": ("workspace_id", "slug", "name", "created_at"),
    "members": ("workspace_id", "user_id", "email", "name", "role", "joined_at"),
    "devices": (
        "workspace_id", "device_id", "machine_id", "hostname", "name", "paired_by", "paired_at",
        "last_sync_at", "status",
    ),
    "cost_centers": ("workspace_id", "cost_center_id", "name", "created_at"),
    "projects": (
        "workspace_id", "project_id", "slug", "name", "archived", "hourly_rate", "cost_center_id", "created_at",
    ),
    "budgets": (
        "workspace_id", "budget_id", "project_id", "cost_center_id", "monthly_amount", "currency", "updated_at",
    ),
    "billing_statements": (
        "workspace_id", "provider", "period", "amount", "currency", "note", "entered_by", "entered_at",
    ),
    "provider_project_map": ("workspace_id", "provider", "provider_project", "project_id", "created_at"),
}  # fmt: skip

PROVIDER_COST_COLUMNS: tuple[str, ...] = (
    "workspace_id", "provider", "day", "source", "line_item", "provider_project", "model", "amount", "currency",
    "pulled_at",
)  # fmt: skip


PROVIDER_USAGE_COLUMNS: tuple[str, ...] = (
    "workspace_id", "provider", "day", "source", "model", "provider_project", "input_tokens", "cached_input_tokens",
    "cache_write_tokens", "output_tokens", "requests", "pulled_at",
)  # fmt: skip


@dataclass(frozen=True)
class TokenLine:
    """One line of `raw.provider_usage`: tokens a provider counted for one model on one day."""

    workspace_id: UUID
    provider: str
    day: date
    source: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    requests: int | None = None
    provider_project: str = ""


@dataclass(frozen=True)
class CostLine:
    """One billing line of `raw.provider_costs`: what a provider billed for one line item on one day."""

    workspace_id: UUID
    provider: str
    day: date
    source: str
    line_item: str
    amount: Decimal
    model: str = ""
    provider_project: str = ""
    currency: str = "USD"


def now() -> datetime:
    return datetime.now(UTC)


def write_snapshot(
    client: Client,
    databases: Databases,
    table: str,
    rows: Sequence[Sequence[Any]],
    *,
    snapshot_at: datetime | None = None,
) -> int:
    """Write one whole snapshot of a control-plane table, then log it (staging reads only logged ones)."""
    columns = SNAPSHOT_COLUMNS[table]
    taken = snapshot_at or now()
    if rows:
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"a {table} row has {len(row)} values for {len(columns)} columns {columns}")
        client.insert(
            f"{databases.raw}.{table}",
            [[*row, taken] for row in rows],
            column_names=[*columns, "snapshot_at"],
        )
    client.insert(
        f"{databases.raw}.snapshots",
        [[table, taken, len(rows)]],
        column_names=["source", "snapshot_at", "row_count"],
    )
    return len(rows)


def write_cost_lines(
    client: Client,
    databases: Databases,
    lines: Iterable[CostLine],
    *,
    days: Iterable[tuple[UUID, str, date, str]] = (),
    pulled_at: datetime | None = None,
) -> int:
    """Write one pull's billing lines. Every (workspace, provider, day, source) in `days` that has no line
    gets a zero line, so the pull still replaces what an earlier pull said about that day."""
    pulled = pulled_at or now()
    rows = [
        [
            line.workspace_id, line.provider, line.day, line.source, line.line_item, line.provider_project,
            line.model, line.amount, line.currency, pulled,
        ]
        for line in lines
    ]  # fmt: skip
    covered = {(r[0], r[1], r[2], r[3]) for r in rows}
    for key in days:
        if key not in covered:
            rows.append([*key, "", "", "", Decimal(0), "USD", pulled])
    if rows:
        client.insert(f"{databases.raw}.provider_costs", rows, column_names=list(PROVIDER_COST_COLUMNS))
    return len(rows)


def write_token_lines(
    client: Client, databases: Databases, lines: Iterable[TokenLine], *, pulled_at: datetime | None = None
) -> int:
    """Write one pull's usage lines (tokens per model and day)."""
    pulled = pulled_at or now()
    rows = [
        [
            line.workspace_id, line.provider, line.day, line.source, line.model, line.provider_project,
            line.input_tokens, line.cached_input_tokens, line.cache_write_tokens, line.output_tokens, line.requests,
            pulled,
        ]
        for line in lines
    ]  # fmt: skip
    if rows:
        client.insert(f"{databases.raw}.provider_usage", rows, column_names=list(PROVIDER_USAGE_COLUMNS))
    return len(rows)


def write_rate_rows(
    client: Client, databases: Databases, rows: Iterable[RateRow], *, pulled_at: datetime | None = None
) -> int:
    """Write catalogue rate rows as given (callers decide which rows changed)."""
    pulled = pulled_at or now()
    data = [[*row_values(row), pulled] for row in rows]
    if data:
        client.insert(f"{databases.raw}.rate_rows", data, column_names=[*RATE_ROW_COLUMNS, "pulled_at"])
    return len(data)


def current_rate_rows(
    client: Client, databases: Databases
) -> dict[tuple[str, str, str, date], tuple[Any, ...]]:
    """The rate rows of the catalogue the warehouse prices with (the one written last), keyed by (provider,
    model, mode, valid_from), values comparable with `row_values()`. Empty before the first write."""
    table = f"{databases.raw}.rate_rows"
    result = client.query(
        f"SELECT {', '.join(RATE_ROW_COLUMNS)} FROM {table} FINAL "
        f"WHERE catalogue = (SELECT argMax(catalogue, pulled_at) FROM {table} FINAL)"
    )
    return {(row[1], row[2], row[3], row[4]): _normalise(row) for row in result.result_rows}


def changed_rate_rows(
    rows: Iterable[RateRow], current: dict[tuple[str, str, str, date], tuple[Any, ...]]
) -> list[RateRow]:
    """The rows of `rows` that the warehouse does not hold as they are. A catalogue other than the one in
    force changes every row (the catalogue is a column), so all of its rows are written, and written last."""
    return [
        row
        for row in rows
        if current.get((row.provider, row.model, row.mode, row.valid_from)) != _normalise(row_values(row))
    ]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, list | tuple):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, dict):  # a named tuple as clickhouse-connect returns it
        return tuple(_normalise(v) for v in value.values())
    return value
