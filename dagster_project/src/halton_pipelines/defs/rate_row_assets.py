"""The catalogue in force (`price_catalogue`: the newest stored, else the packaged one) as `raw.rate_rows`,
written only when they changed.

Writing only changed rows matters: the priced requests re-price every day when the newest write moves.
"""

import dagster as dg

from halton_pipelines.catalogue_source import catalogue_in_force
from halton_pipelines.defs.catalogue import PRICE_CATALOGUE
from halton_pipelines.resources import WarehouseResource
from halton_warehouse.catalogue_rate_rows import card_rows
from halton_warehouse.raw_writes import changed_rate_rows, current_rate_rows, write_rate_rows

MODEL_PRICES = dg.AssetKey(["price_card", "model_prices"])


@dg.asset(
    key=MODEL_PRICES,
    deps=[PRICE_CATALOGUE],
    group_name="sources",
    kinds={"python", "clickhouse"},
    description=(
        "The price catalogue the meter prices with, as rate rows (one per model, mode and day a price starts)."
    ),
)
def model_prices(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    client = warehouse.client()
    catalogue = catalogue_in_force(client, warehouse.databases)
    rows = card_rows(catalogue)
    changed = changed_rate_rows(rows, current_rate_rows(client, warehouse.databases))
    written = write_rate_rows(client, warehouse.databases, changed)
    context.log.info("catalogue %s: %d rate rows, %d new or changed", catalogue.version, len(rows), written)
    return dg.MaterializeResult(
        metadata={"catalogue": catalogue.version, "card_rows": len(rows), "rows_written": written}
    )


price_card_daily = dg.ScheduleDefinition(
    name="price_card_daily",
    target=dg.AssetSelection.assets(model_prices),
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(assets=[model_prices], schedules=[price_card_daily])
