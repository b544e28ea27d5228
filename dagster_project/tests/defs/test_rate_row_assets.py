"""The price card asset writes the catalogue's rate rows once, then only what changed."""

from __future__ import annotations

import dagster as dg

from halton_meter.catalogue import load_catalogue
from halton_pipelines.defs.rate_row_assets import model_prices
from halton_pipelines.resources import WarehouseResource
from halton_warehouse.catalogue_rate_rows import card_rows


def test_writes_the_rate_rows_then_nothing_until_they_change(stores) -> None:
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix)
    }
    rows = card_rows(load_catalogue())
    first = dg.materialize([model_prices], resources=resources)
    [event] = first.asset_materializations_for_node("price_card__model_prices")
    assert event.metadata["rows_written"].value == len(rows) > 1000
    second = dg.materialize([model_prices], resources=resources)
    [event] = second.asset_materializations_for_node("price_card__model_prices")
    assert event.metadata["rows_written"].value == 0
    count = stores.client().query(f"SELECT count() FROM {stores.databases.raw}.rate_rows FINAL").result_rows
    assert count == [(len(rows),)]
