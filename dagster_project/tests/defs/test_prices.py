"""The price card asset writes the card once, then only what changed."""

from __future__ import annotations

import dagster as dg

from halton_pipelines.defs.prices import model_prices
from halton_pipelines.price_card import card_rows
from halton_pipelines.resources import WarehouseResource


def test_writes_the_card_then_nothing_until_it_changes(stores) -> None:
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix)
    }
    first = dg.materialize([model_prices], resources=resources)
    [event] = first.asset_materializations_for_node("price_card__model_prices")
    assert event.metadata["rows_written"].value == len(card_rows()) > 100
    second = dg.materialize([model_prices], resources=resources)
    [event] = second.asset_materializations_for_node("price_card__model_prices")
    assert event.metadata["rows_written"].value == 0
    count = (
        stores.client().query(f"SELECT count() FROM {stores.databases.raw}.model_prices FINAL").result_rows
    )
    assert count == [(len(card_rows()),)]
