"""Re-price stored calls after a price update (a new price catalogue, an edited ``rates.json``).

Each row's request and usage are rebuilt from its columns and priced again with the current
:class:`~halton_meter.pricing.PriceBook`. A row whose cost or price card changes is updated and its
``synced_at`` cleared, so the cloud receives the corrected row (the cloud is idempotent per
``request_uid``). Calls with no usage at all (no response) have nothing to price and are skipped.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
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
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RepriceSummary:
    """Re-price the rows of ``period`` (all rows if None); ``progress(done, total)`` is called per chunk."""
    summary = RepriceSummary(price_data=pricebook.version, dry_run=dry_run)
    where, args = "", ()
    if period is not None:
        where, args = "WHERE started_at >= ? AND started_at < ?", (ts(period.start), ts(period.end))
    total = conn.execute(f"SELECT COUNT(*) FROM requests {where}", args).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM requests {where} ORDER BY started_at", args)
    updates: list[tuple[Any, ...]] = []
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
        with transaction(conn):
            conn.executemany(
                "UPDATE requests SET cost_nusd = ?, price_card = ?, unpriced_reason = ?, synced_at = NULL "
                "WHERE request_uid = ?",
                updates,
            )
    return summary


def _reprice_row(row: sqlite3.Row, pricebook: Any, summary: RepriceSummary) -> tuple[Any, ...] | None:
    summary.examined += 1
    usage = row_usage(row)
    if usage.input_tokens is None and usage.output_tokens is None and usage.billed_cost_usd is None:
        summary.skipped_no_usage += 1
        summary.before_nusd += row["cost_nusd"] or 0
        summary.after_nusd += row["cost_nusd"] or 0
        return None
    price = pricebook.price(row_request_info(row), usage, parse_ts(row["started_at"]))
    after = usd_to_nanos(price.cost_usd) if price.cost_usd is not None else None
    before = row["cost_nusd"]
    summary.before_nusd += before or 0
    summary.after_nusd += after or 0
    if after == before and price.price_card == row["price_card"]:
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
    return (after, price.price_card, None if after is not None else price.unpriced_reason, row["request_uid"])


def total_usd(nanos: int) -> Decimal:
    return nanos_to_usd(nanos) or Decimal(0)
