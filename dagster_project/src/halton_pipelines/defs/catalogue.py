"""The price catalogue the cloud publishes: read daily from a configurable source, validated, every new
version kept in `raw.price_catalogues` with what it changed.

The newest stored version is the one in force: `GET /v1/rates` serves it to meters, which install it on
their next sync, and the pipelines price with it (`halton_pipelines.catalogue_source.catalogue_in_force`).
A catalogue that fails validation fails the run with the validator's message naming the entry, and nothing
is stored: the one in force stays.
"""

from datetime import UTC, datetime

import dagster as dg

from halton_meter.catalogue import CatalogueError, validate_catalogue
from halton_meter.catalogue.diff import diff_catalogues
from halton_pipelines.catalogue_source import SourceError, document_in_force
from halton_pipelines.resources import CatalogueSourceResource, WarehouseResource
from halton_warehouse.price_catalogues import is_stored, store_catalogue

PRICE_CATALOGUE = dg.AssetKey(["price_card", "price_catalogue"])
MAX_LINES_SHOWN = 200


@dg.asset(
    key=PRICE_CATALOGUE,
    group_name="sources",
    kinds={"python", "clickhouse"},
    description="The price catalogue (rates.json) meters and pipelines price with; every version kept.",
)
def price_catalogue(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, price_source: CatalogueSourceResource
) -> dg.MaterializeResult:
    try:
        fetched = price_source.fetch()
        document = fetched.document()
        validate_catalogue(document)
    except (SourceError, CatalogueError) as error:
        raise dg.Failure(
            description=f"{error}\nNothing was stored: the catalogue in force stays.",
            allow_retries=isinstance(error, SourceError),
        ) from error
    version = str(document["version"])
    client = warehouse.client()
    databases = warehouse.databases
    if is_stored(client, databases, version):
        context.log.info("price catalogue %s from %s is already stored", version, fetched.where)
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "source": fetched.where,
                "stored": False,
                "summary": "already stored",
            }
        )
    previous, previous_where, _ = document_in_force(client, databases)
    diff = diff_catalogues(previous, document)
    lines = diff.lines()
    store_catalogue(
        client,
        databases,
        version=version,
        document=fetched.text,
        source=fetched.where,
        fetched_at=datetime.now(UTC),
        changes="\n".join(lines),
    )
    context.log.info("stored price catalogue %s: %s", version, diff.summary())
    shown = lines[:MAX_LINES_SHOWN]
    if len(lines) > len(shown):
        shown.append(f"… and {len(lines) - len(shown)} more (raw.price_catalogues.changes has them all)")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "previous_version": diff.old_version or "",
            "compared_with": previous_where,
            "source": fetched.where,
            "stored": True,
            "summary": diff.summary(),
            "models_added": len(diff.added),
            "models_removed": len(diff.removed),
            "values_changed": len(diff.changes),
            "changes": dg.MetadataValue.md(
                "```\n" + "\n".join(shown) + "\n```" if shown else "no price changes"
            ),
        }
    )


price_catalogue_daily = dg.ScheduleDefinition(
    name="price_catalogue_daily",
    target=dg.AssetSelection.assets(price_catalogue),
    cron_schedule="30 4 * * *",  # before price_card_daily (05:00): rate rows are written from the new one
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(assets=[price_catalogue], schedules=[price_catalogue_daily])
