"""Re-pricing stored calls after a price change: exact new costs, re-sync flag, dry runs."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

from halton_meter.pricing import PriceBook
from halton_meter.reprice import reprice
from halton_meter.store import mark_synced, open_store


def costs(db) -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    return {m: (c, s) for m, c, s in conn.execute("SELECT model_served, cost_nusd, synced_at FROM requests")}


def test_reprice_fixes_costs_and_marks_rows_for_resync(home, seed):
    stale = seed(model="gpt-4o", cost="0.5", input_tokens=1000, output_tokens=100)  # wrong stored cost
    seed(model="gpt-mystery", cost=None, unpriced_reason="no price")
    seed(model="gpt-4o", cost=None, status=500, input_tokens=None, output_tokens=None)
    conn = open_store(home.db)
    mark_synced(conn, [stale.request_uid], datetime.now(UTC))

    # A rates.json override prices the unknown model: $1 / $2 per million tokens.
    rates = home.home / "rates.json"
    rates.write_text(json.dumps({"format": 1, "models": {"openai/gpt-mystery": {"input": 1, "output": 2}}}))
    summary = reprice(conn, PriceBook(rates))
    assert (summary.examined, summary.changed, summary.newly_priced, summary.skipped_no_usage) == (3, 2, 1, 1)
    # gpt-4o: 1000 x $2.50 + 100 x $10 per million = $0.0035; gpt-mystery: 1000 x $1 + 100 x $2 = $0.0012.
    fixed = (
        sqlite3.connect(home.db)
        .execute(
            "SELECT cost_nusd, synced_at, price_card FROM requests WHERE request_uid = ?",
            (str(stale.request_uid),),
        )
        .fetchone()
    )
    assert fixed[0] == 3_500_000 and fixed[1] is None and fixed[2].startswith("catalogue ")
    assert costs(home.db)["gpt-mystery"][0] == 1_200_000
    document = summary.to_json()
    assert Decimal(document["total_before_usd"]) == Decimal("0.5")
    assert Decimal(document["total_after_usd"]) == Decimal("0.0047")
    # Nothing left to change the second time.
    assert reprice(conn, PriceBook(rates)).changed == 0


def test_dry_run_writes_nothing(home, seed):
    seed(model="gpt-4o", cost="0.5")
    conn = open_store(home.db)
    summary = reprice(conn, PriceBook(None), dry_run=True)
    assert summary.changed == 1 and summary.dry_run
    assert costs(home.db)["gpt-4o"][0] == 500_000_000
