"""A catalogue change reaches a paired meter within one sync: unpriced rows are priced, rows before a price's
start keep the older price, and the corrected rows reach the cloud (issue 17, items 3 and 4).

Real processes: the API (`halton-cloud serve`, publishing `GET /v1/rates`), the meter (`halton-meter start`)
paired with it, the official OpenAI SDK through the meter against a fake provider, and the Dagster
`price_catalogue` asset materialized for real to put the new catalogue in the cloud; the reconciliation marts
are built by dbt (the scheduled jobs' snapshot and `model_prices` first) before and after, and move.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import openai
import pytest
from test_pairing_e2e import connect, new_meter

from cloud_support import CloudProcess
from halton_meter.catalogue import active_catalogue, load_catalogue, parse_catalogue
from halton_meter.pricing import PriceBook
from halton_meter.reprice import price_history, row_request_info, row_usage
from halton_meter.store import parse_ts
from halton_meter.testing.catalogues import edited_catalogue
from halton_meter.testing.fake_cloud import store_rows
from halton_meter.testing.processes import wait_for
from halton_pipelines.defs.catalogue import price_catalogue
from halton_pipelines.resources import CatalogueSourceResource, WarehouseResource

NEW_VERSION = "2099-01-01+e2e0e2e0e2e0"
UNKNOWN = "gpt-mystery-9"


@pytest.fixture
def cloud(postgres_url: str, warehouse, tmp_path: Path) -> Iterator[CloudProcess]:
    """The API with no delay on a new catalogue (`rates_cache_seconds` 0)."""
    process = CloudProcess.on_stores(
        tmp_path,
        database_url=postgres_url,
        warehouse_url=warehouse.url,
        prefix=warehouse.prefix,
        RATES_CACHE_SECONDS="0",
    )
    process.start()
    yield process
    process.stop()


def rows(meter) -> dict[str, sqlite3.Row]:
    conn = sqlite3.connect(meter.paths.db)
    conn.row_factory = sqlite3.Row
    try:
        return {row["request_uid"]: row for row in conn.execute("SELECT * FROM requests")}
    finally:
        conn.close()


def cost_with(book: PriceBook, row: sqlite3.Row) -> Decimal:
    price = book.price(row_request_info(row), row_usage(row), parse_ts(row["started_at"]))
    assert price.cost_usd is not None, price.unpriced_reason
    return price.cost_usd


def cloud_cost(warehouse, uid: str) -> Decimal | None:
    found = (
        warehouse.client()
        .query(
            f"SELECT cost_usd FROM {warehouse.databases.raw}.requests_dedup WHERE request_uid = %(u)s",
            {"u": uid},
        )
        .result_rows
    )
    return found[0][0] if found else None


def reconciliation(warehouse, postgres_url: str, workspace_id: str) -> tuple[Decimal, Decimal, int]:
    """(logged, re-priced, unpriced calls) of today's OpenAI reconciliation row, after the marts are built
    as the scheduled jobs build them: control-plane snapshot, rate rows of the catalogue in force, dbt."""
    from halton_pipelines.defs.rate_row_assets import model_prices
    from halton_pipelines.defs.snapshot import control_plane_snapshot
    from halton_pipelines.resources import ControlPlaneResource, HaltonDbtResource

    today = datetime.now(UTC).date()
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "control_plane": ControlPlaneResource(database_url=postgres_url),
    }
    assert dg.materialize([control_plane_snapshot, model_prices], resources=resources).success
    dbt = HaltonDbtResource(
        clickhouse_url=warehouse.url, database_prefix=warehouse.prefix, as_of=today.isoformat()
    )
    assert dbt.cli(["run", "--select", "+reconciliation_daily"]).wait().is_successful()
    (row,) = (
        warehouse.client()
        .query(
            f"SELECT logged_usd, repriced_usd, unpriced_requests FROM {warehouse.databases.marts}.reconciliation_daily "
            "WHERE workspace_id = %(w)s AND provider = 'openai' AND day = %(d)s",
            {"w": workspace_id, "d": today},
        )
        .result_rows
    )
    return row[0], row[1], int(row[2])


def test_a_new_catalogue_reaches_a_paired_meter_and_prices_its_unpriced_calls(
    tmp_path, cloud, person, providers, warehouse, postgres_url
):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    today = datetime.now(UTC).date()
    with meter.running():
        connect(meter, person, cloud)
        sdk = openai.OpenAI(
            base_url=f"http://127.0.0.1:{meter.port}/openai/v1", api_key="sk-test", max_retries=0
        )
        sdk.chat.completions.create(model=UNKNOWN, messages=[{"role": "user", "content": "hi"}])
        # A gpt-4o call from yesterday the meter could not price (say its usage arrived late): it must get
        # the price in force yesterday, not the one that starts today.
        yesterday = datetime.now(UTC) - timedelta(days=1)
        (old_uid,) = store_rows(
            meter.paths,
            1,
            started_at=yesterday,
            ended_at=yesterday + timedelta(seconds=1),
            cost_usd=None,
            price_card=None,
        )
        wait_for(lambda: meter.unsynced() == 0 and len(rows(meter)) == 2, timeout=60, what="both rows synced")
        (unknown_uid,) = [uid for uid, row in rows(meter).items() if row["model_requested"] == UNKNOWN]
        recorded = rows(meter)[unknown_uid]
        assert recorded["cost_nusd"] is None and recorded["input_tokens"] > 0  # tokens kept, never $0
        assert f"no price for openai/{UNKNOWN}" in recorded["unpriced_reason"]
        assert cloud_cost(warehouse, unknown_uid) is None and cloud_cost(warehouse, old_uid) is None
        workspace_id = str(
            warehouse.client()
            .query(
                f"SELECT workspace_id FROM {warehouse.databases.raw}.requests_dedup WHERE request_uid = %(u)s",
                {"u": unknown_uid},
            )
            .result_rows[0][0]
        )
        logged_before, repriced_before, unpriced_before = reconciliation(
            warehouse, postgres_url, workspace_id
        )
        assert unpriced_before >= 1
        uids_before = set(rows(meter))

        # The cloud refreshes its catalogue: a model it did not know, and gpt-4o dearer from today.
        new = edited_catalogue(
            NEW_VERSION,
            new_models=[("openai", UNKNOWN, "1", "2")],
            dated_prices=[("openai", "gpt-4o", today.isoformat(), "5", "20")],
        )
        source = tmp_path / "rates-new.json"
        source.write_text(json.dumps(new))
        refreshed = dg.materialize(
            [price_catalogue],
            resources={
                "warehouse": WarehouseResource(
                    clickhouse_url=warehouse.url, database_prefix=warehouse.prefix
                ),
                "price_source": CatalogueSourceResource(location=str(source)),
            },
        )
        assert refreshed.success
        store_rows(meter.paths, 1)  # the meter's next sync (one that uploads something)

        # One sync later the meter has it in force and has priced both rows.
        wait_for(
            lambda: active_catalogue(meter.paths.catalogue).version == NEW_VERSION,
            timeout=60,
            what="the meter installs the cloud's catalogue",
        )
        wait_for(
            lambda: all(rows(meter)[uid]["cost_nusd"] is not None for uid in (unknown_uid, old_uid)),
            timeout=60,
            what="the unpriced rows priced",
        )
        new_book = PriceBook(None, catalogue=parse_catalogue(new))
        old_book = PriceBook(None, catalogue=load_catalogue())
        now_rows = rows(meter)
        priced = now_rows[unknown_uid]
        expected = (Decimal(priced["input_tokens"]) * 1 + Decimal(priced["output_tokens"]) * 2) / 1_000_000
        assert cost_with(new_book, priced) == expected
        assert Decimal(priced["cost_nusd"]) / 10**9 == expected
        assert priced["price_card"] == f"catalogue {NEW_VERSION}:openai/{UNKNOWN}"
        # Yesterday's gpt-4o row: the older price, not today's.
        before = now_rows[old_uid]
        assert (
            Decimal(before["cost_nusd"]) / 10**9 == cost_with(old_book, before) == cost_with(new_book, before)
        )
        # The original state stays in the row's history.
        conn = sqlite3.connect(meter.paths.db)
        conn.row_factory = sqlite3.Row
        (original,) = price_history(conn, unknown_uid)
        assert original["cost_nusd"] is None and f"openai/{UNKNOWN}" in original["unpriced_reason"]
        conn.close()

        # The corrected rows reached the cloud (a re-sent row with a new cost is stored, not a duplicate).
        wait_for(
            lambda: (
                cloud_cost(warehouse, unknown_uid) == expected
                and cloud_cost(warehouse, old_uid) == cost_with(old_book, before)
            ),
            timeout=60,
            what="the corrected rows in the warehouse",
        )

        # The cloud's marts move on their next build: the call is logged and re-priced at the new catalogue.
        logged_after, repriced_after, unpriced_after = reconciliation(warehouse, postgres_url, workspace_id)
        assert unpriced_after == unpriced_before - 1
        todays = [r for r in now_rows.values() if parse_ts(r["started_at"]).date() == today]
        added = [r for r in todays if r["request_uid"] not in uids_before]  # the row that started the sync
        assert logged_after == sum(Decimal(r["cost_nusd"]) for r in todays) / 10**9
        assert logged_after == logged_before + expected + sum(Decimal(r["cost_nusd"]) for r in added) / 10**9
        assert repriced_after == repriced_before + expected + sum(cost_with(new_book, r) for r in added)

        # A gpt-4o call now is priced by the running daemon with today's new price, no restart.
        seen = set(rows(meter))
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        wait_for(lambda: len(rows(meter)) == len(seen) + 1, timeout=30, what="the new call recorded")
        (fresh,) = [row for uid, row in rows(meter).items() if uid not in seen]
        assert Decimal(fresh["cost_nusd"]) / 10**9 == cost_with(new_book, fresh) != cost_with(old_book, fresh)
        assert fresh["price_card"].startswith(f"catalogue {NEW_VERSION}:openai/gpt-4o")
