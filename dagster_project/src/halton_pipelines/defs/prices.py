"""The shared price card (genai-prices) as `raw.model_prices`, written only when it changed.

Writing only changed rows matters: the priced requests re-price every day when the card's newest write moves.
"""

import dagster as dg

from halton_pipelines.price_card import card_name, card_rows
from halton_pipelines.raw_writes import changed_price_rows, current_price_rows, write_price_rows
from halton_pipelines.resources import WarehouseResource

MODEL_PRICES = dg.AssetKey(["price_card", "model_prices"])


@dg.asset(
    key=MODEL_PRICES,
    group_name="sources",
    kinds={"python", "clickhouse"},
    description="The price card the meter prices with (genai-prices data), one row per model and price period.",
)
def model_prices(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    client = warehouse.client()
    rows = card_rows()
    changed = changed_price_rows(rows, current_price_rows(client, warehouse.databases))
    written = write_price_rows(client, warehouse.databases, changed)
    context.log.info("price card %s: %d rows, %d new or changed", card_name(), len(rows), written)
    return dg.MaterializeResult(
        metadata={"card": card_name(), "card_rows": len(rows), "rows_written": written}
    )


price_card_daily = dg.ScheduleDefinition(
    name="price_card_daily",
    target=dg.AssetSelection.assets(model_prices),
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(assets=[model_prices], schedules=[price_card_daily])
