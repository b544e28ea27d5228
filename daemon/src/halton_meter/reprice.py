"""Re-price stored calls after a price update (a new catalogue installed, an edited ``rates.json``).

Each row's request and usage are rebuilt from its columns and priced again with the current
:class:`~halton_meter.pricing.PriceBook`. ``unpriced_only`` looks only at rows without a cost: what a new
catalogue does on arrival, so a call to a model it now knows is priced and nothing priced before moves.

A row whose cost, price card or unpriced reason changes keeps its previous state in
``request_price_history`` (the same transaction), so the original record of a call is never lost. When
its cost or price card changed its ``synced_at`` is cleared and the cloud receives the corrected row (the
cloud stores a re-sent row whose cost differs from the one it holds; an identical one is a duplicate).
Calls with no usage at all (no response) have nothing to price and are skipped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from halton_meter.report import Period
from halton_meter.store import nanos_to_usd, parse_ts, transaction, ts, usd_to_nanos
from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)

_CHUNK = 1000


@dataclass
class ModelChange:
    model: str
    rows: int = 0
    before_nusd: int = 0
    after_nusd: int = 0


@dataclass
class RepriceSummary:
    examined: int = 0
    skipped_no_usage: int = 0
    changed: int = 0
    newly_priced: int = 0
    newly_unpriced: int = 0
    before_nusd: int = 0
    after_nusd: int = 0
    price_data: str = ""
    dry_run: bool = False
    unpriced_only: bool = False
    by_model: dict[str, ModelChange] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "skipped_no_usage": self.skipped_no_usage,
            "changed": self.changed,
            "newly_priced": self.newly_priced,
            "newly_unpriced": self.newly_unpriced,
            "total_before_usd": str(nanos_to_usd(self.before_nusd)),
            "total_after_usd": str(nanos_to_usd(self.after_nusd)),
            "price_data": self.price_data,
            "dry_run": self.dry_run,
            "unpriced_only": self.unpriced_only,
            "by_model": [
                {
                    "model": m.model,
                    "rows": m.rows,
                    "before_usd": str(nanos_to_usd(m.before_nusd)),
                    "after_usd": str(nanos_to_usd(m.after_nusd)),
                }
                for m in sorted(self.by_model.values(), key=lambda m: -abs(m.after_nusd - m.before_nusd))
            ],
        }


def row_request_info(row: sqlite3.Row) -> RequestInfo:
    return RequestInfo(
        provider=row["provider"],
        endpoint=row["endpoint"],
        model_requested=row["model_requested"],
        streamed=bool(row["streamed"]),
        batch=bool(row["batch"]),
        service_tier=row["service_tier_requested"],
        prompt_hash=row["prompt_hash"],
    )


def row_usage(row: sqlite3.Row) -> Usage:
    return Usage(
        model_served=row["model_served"],
        provider_request_id=row["provider_request_id"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        cache_write_1h_tokens=row["cache_write_1h_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        service_tier=row["service_tier"],
        region=row["region"],
        billed_cost_usd=nanos_to_usd(row["billed_cost_nusd"]),
        extra_units=json.loads(row["extra_units"]) if row["extra_units"] else {},
        complete=bool(row["complete"]),
        parse_errors=row["parse_errors"],
    )


def reprice(
    conn: sqlite3.Connection,
    pricebook: Any,
    period: Period | None = None,
    *,
    unpriced_only: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RepriceSummary:
    """Re-price the rows of ``period`` (all rows if None; only those without a cost if ``unpriced_only``);
    ``progress(done, total)`` is called per chunk."""
    summary = RepriceSummary(price_data=pricebook.version, dry_run=dry_run, unpriced_only=unpriced_only)
    conditions: list[str] = []
    args: tuple[Any, ...] = ()
    if period is not None:
        conditions.append("started_at >= ? AND started_at < ?")
        args = (ts(period.start), ts(period.end))
    if unpriced_only:
        conditions.append("cost_nusd IS NULL")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    total = conn.execute(f"SELECT COUNT(*) FROM requests {where}", args).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM requests {where} ORDER BY started_at", args)
    updates: list[_Update] = []
    done = 0
    while chunk := rows.fetchmany(_CHUNK):
        for row in chunk:
            update = _reprice_row(row, pricebook, summary)
            if update is not None:
                updates.append(update)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if updates and not dry_run:
        _write(conn, updates, pricebook.version)
    return summary


@dataclass(frozen=True)
class _Update:
    request_uid: str
    before: tuple[int | None, str | None, str | None]  # cost_nusd, price_card, unpriced_reason as read
    after: tuple[int | None, str | None, str | None]
    resync: bool  # the cloud's copy (cost, price card) changes


def _write(conn: sqlite3.Connection, updates: list[_Update], price_data: str) -> None:
    """History first, then the row, each only if the row is still as it was read (a concurrent writer wins)."""
    now = ts(datetime.now(UTC))
    unchanged = "request_uid = ? AND cost_nusd IS ? AND price_card IS ? AND unpriced_reason IS ?"
    with transaction(conn):
        conn.executemany(
            "INSERT INTO request_price_history (request_uid, replaced_at, replaced_by, cost_nusd, price_card,"
            " unpriced_reason, synced_at) SELECT request_uid, ?, ?, cost_nusd, price_card, unpriced_reason,"
            f" synced_at FROM requests WHERE {unchanged}",
            [(now, price_data, u.request_uid, *u.before) for u in updates],
        )
        conn.executemany(
            "UPDATE requests SET cost_nusd = ?, price_card = ?, unpriced_reason = ?,"
            f" synced_at = CASE WHEN ? THEN NULL ELSE synced_at END WHERE {unchanged}",
            [(*u.after, int(u.resync), u.request_uid, *u.before) for u in updates],
        )


def price_history(conn: sqlite3.Connection, request_uid: str) -> list[sqlite3.Row]:
    """A row's earlier prices, oldest first."""
    return conn.execute(
        "SELECT replaced_at, replaced_by, cost_nusd, price_card, unpriced_reason, synced_at"
        " FROM request_price_history WHERE request_uid = ? ORDER BY id",
        (request_uid,),
    ).fetchall()


def _reprice_row(row: sqlite3.Row, pricebook: Any, summary: RepriceSummary) -> _Update | None:
    summary.examined += 1
    usage = row_usage(row)
    if usage.input_tokens is None and usage.output_tokens is None and usage.billed_cost_usd is None:
        summary.skipped_no_usage += 1
        summary.before_nusd += row["cost_nusd"] or 0
        summary.after_nusd += row["cost_nusd"] or 0
        return None
    price = pricebook.price(
        row_request_info(row), usage, parse_ts(row["started_at"]), status_code=row["status_code"]
    )
    after = usd_to_nanos(price.cost_usd) if price.cost_usd is not None else None
    before = row["cost_nusd"]
    summary.before_nusd += before or 0
    summary.after_nusd += after or 0
    reason = None if after is not None else price.unpriced_reason
    resync = after != before or price.price_card != row["price_card"]
    if not resync and reason == row["unpriced_reason"]:
        return None
    summary.changed += 1
    if before is None and after is not None:
        summary.newly_priced += 1
    if before is not None and after is None:
        summary.newly_unpriced += 1
    model = row["model_served"] or row["model_requested"] or "(unknown)"
    change = summary.by_model.setdefault(model, ModelChange(model))
    change.rows += 1
    change.before_nusd += before or 0
    change.after_nusd += after or 0
    return _Update(
        row["request_uid"],
        (before, row["price_card"], row["unpriced_reason"]),
        (after, price.price_card, reason),
        resync,
    )


def total_usd(nanos: int) -> Decimal:
    return nanos_to_usd(nanos) or Decimal(0)
