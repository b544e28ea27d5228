"""Halton's Dagster definitions: the per-domain modules merged, with resources chosen per environment.

    uv run dagster dev -m halton_pipelines.definitions

Environment (secrets are read through `EnvVar`, at run time):
- HALTON_CLICKHOUSE_URL (default: the embedded warehouse server), HALTON_CLICKHOUSE_DATABASE_PREFIX;
- HALTON_DATABASE_URL: the control plane (snapshot, provider keys);
- HALTON_SECRET_KEY: the cloud secret provider keys and export credentials are encrypted with;
- HALTON_BILLING_FIXTURES: a directory of recorded billing answers to use instead of the live APIs;
- HALTON_DBT_AS_OF: the day dbt treats as today (backfills, demos);
- HALTON_PRICES_SOURCE: where the price catalogue is refreshed from daily (an https URL or a file; default:
  the catalogue packaged with halton-meter).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from halton_pipelines.defs import (
    alert_assets,
    billing_pulls,
    catalogue,
    dbt,
    parquet_exports,
    rate_row_assets,
    recommendation_assets,
    snapshot,
)
from halton_pipelines.resources import (
    AlertsResource,
    BillingAPIsResource,
    CatalogueSourceResource,
    ControlPlaneResource,
    ExportDestinationsResource,
    HaltonDbtResource,
    ProviderKeysResource,
    RecordedBillingResource,
    WarehouseResource,
)
from halton_warehouse import WarehouseSettings


def _warehouse_url() -> Any:
    # The URL can carry a password: read it at run time when it is set; the embedded default is no secret.
    if os.environ.get("HALTON_CLICKHOUSE_URL"):
        return dg.EnvVar("HALTON_CLICKHOUSE_URL")
    return WarehouseSettings().clickhouse_url


def _billing_apis() -> BillingAPIsResource:
    # The same variables the API's settings read for testing a connection (HALTON_*_BILLING_URL).
    urls = {
        f"{provider}_base_url": os.environ[f"HALTON_{provider.upper()}_BILLING_URL"]
        for provider in ("openai", "anthropic", "xai")
        if os.environ.get(f"HALTON_{provider.upper()}_BILLING_URL")
    }
    return BillingAPIsResource(**urls)


def resources_for_environment() -> dict[str, Any]:
    prefix = WarehouseSettings().clickhouse_database_prefix
    url = _warehouse_url()
    fixtures = os.environ.get("HALTON_BILLING_FIXTURES")
    return {
        "warehouse": WarehouseResource(clickhouse_url=url, database_prefix=prefix),
        "control_plane": ControlPlaneResource(database_url=dg.EnvVar("HALTON_DATABASE_URL")),
        "alerts": AlertsResource(
            database_url=dg.EnvVar("HALTON_DATABASE_URL"), secret_key=dg.EnvVar("HALTON_SECRET_KEY")
        ),
        "provider_keys": ProviderKeysResource(
            database_url=dg.EnvVar("HALTON_DATABASE_URL"), secret_key=dg.EnvVar("HALTON_SECRET_KEY")
        ),
        "export_destinations": ExportDestinationsResource(
            database_url=dg.EnvVar("HALTON_DATABASE_URL"), secret_key=dg.EnvVar("HALTON_SECRET_KEY")
        ),
        "billing_apis": RecordedBillingResource(directory=fixtures) if fixtures else _billing_apis(),
        "price_source": CatalogueSourceResource(location=os.environ.get("HALTON_PRICES_SOURCE", "")),
        "dbt": HaltonDbtResource(
            clickhouse_url=url, database_prefix=prefix, as_of=os.environ.get("HALTON_DBT_AS_OF", "")
        ),
    }


defs = dg.Definitions.merge(
    billing_pulls.defs,
    snapshot.defs,
    catalogue.defs,
    rate_row_assets.defs,
    dbt.defs,
    recommendation_assets.defs,
    alert_assets.defs,
    parquet_exports.defs,
    dg.Definitions(resources=resources_for_environment()),
)
