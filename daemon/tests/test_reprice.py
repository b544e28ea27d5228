"""Re-pricing stored calls after a price change: exact new costs, re-sync flag, dry runs."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

from halton_meter.pricing import PriceBook
from halton_meter.reprice import price_history, reprice
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


def test_unpriced_only_prices_what_was_unknown_and_keeps_the_original_in_the_history(home, seed):
    priced = seed(model="gpt-4o", cost="0.5", input_tokens=1000, output_tokens=100)  # wrong, but priced
    unknown = seed(model="gpt-mystery", cost=None, unpriced_reason="no price for openai/gpt-mystery")
    still = seed(model="gpt-nobody-knows", cost=None, unpriced_reason="no price")
    conn = open_store(home.db)
    mark_synced(conn, [priced.request_uid, unknown.request_uid, still.request_uid], datetime.now(UTC))
    rates = home.home / "rates.json"
    rates.write_text(json.dumps({"format": 1, "models": {"openai/gpt-mystery": {"input": 1, "output": 2}}}))

    summary = reprice(conn, PriceBook(rates), unpriced_only=True)

    assert (summary.examined, summary.newly_priced, summary.unpriced_only) == (2, 1, True)
    rows = {
        row["request_uid"]: row
        for row in conn.execute("SELECT request_uid, cost_nusd, unpriced_reason, synced_at FROM requests")
    }
    assert rows[str(priced.request_uid)]["cost_nusd"] == 500_000_000  # a priced row is left alone
    assert rows[str(priced.request_uid)]["synced_at"] is not None
    fixed = rows[str(unknown.request_uid)]
    assert fixed["cost_nusd"] == 1_200_000 and fixed["unpriced_reason"] is None
    assert fixed["synced_at"] is None  # the cloud gets the corrected row
    (original,) = price_history(conn, str(unknown.request_uid))
    assert original["cost_nusd"] is None and original["price_card"] is None
    assert original["unpriced_reason"] == "no price for openai/gpt-mystery"
    assert original["synced_at"] is not None and original["replaced_by"] == PriceBook(rates).version
    # Still unknown: never $0; the new reason is kept, the old one in the history; the cloud's copy is
    # unchanged (cost and card are), so it is not sent again.
    left = rows[str(still.request_uid)]
    assert left["cost_nusd"] is None and "no price for openai/gpt-nobody-knows" in left["unpriced_reason"]
    assert left["synced_at"] is not None
    assert [h["unpriced_reason"] for h in price_history(conn, str(still.request_uid))] == ["no price"]
    # A second run changes nothing and adds no history.
    assert reprice(conn, PriceBook(rates), unpriced_only=True).changed == 0
    assert conn.execute("SELECT count(*) FROM request_price_history").fetchone()[0] == 2


def test_the_cli_reprices_unpriced_rows_with_the_installed_catalogue(home, seed):
    from click.testing import CliRunner

    from halton_meter.catalogue import install_catalogue
    from halton_meter.cli import main
    from halton_meter.testing.catalogues import edited_catalogue

    seed(model="gpt-4o", cost="0.5")
    unknown = seed(model="gpt-mystery-9", cost=None, unpriced_reason="no price")
    unknown_yet = json.loads(CliRunner().invoke(main, ["reprice", "--unpriced", "--json"]).output)
    assert (unknown_yet["examined"], unknown_yet["newly_priced"], unknown_yet["unpriced_only"]) == (
        1,
        0,
        True,
    )

    install_catalogue(
        home.catalogue, edited_catalogue("v-new", new_models=[("openai", "gpt-mystery-9", "1", "2")])
    )
    document = json.loads(CliRunner().invoke(main, ["reprice", "--unpriced", "--json"]).output)
    assert (document["examined"], document["newly_priced"]) == (1, 1)
    assert document["price_data"] == "catalogue v-new"
    assert costs(home.db)["gpt-mystery-9"][0] == 1_200_000 and costs(home.db)["gpt-4o"][0] == 500_000_000
    conn = open_store(home.db)
    assert price_history(conn, str(unknown.request_uid))[0]["unpriced_reason"] == "no price"
