"""The dbt project as Dagster assets (one per model, grouped by folder), refreshed every 15 minutes and
after new ingestion.

`dbt build` runs the models with their tests (dbt tests become asset checks). The sensor watches the newest
`ingested_at` in raw.requests and asks for a run when it moves, so spend and reconciliation follow ingestion
within a minute or so; the incremental models then rebuild only the days that received rows. The two marts
that read all history on every build (prompt clusters, the 30-day model usage) refresh hourly instead.
"""

import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from halton_pipelines.dbt_manifest import manifest_path
from halton_pipelines.defs.billing_pulls import KEYS as BILLING_KEYS
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import HaltonDbtResource, WarehouseResource

REQUESTS = dg.AssetKey(["meter", "requests"])
# Staging models over tables the billing assets write: they depend on those assets, not on a source asset.
BILLING_STAGING = {"stg_billing__provider_costs", "stg_billing__provider_usage"}


class HaltonDbtTranslator(DagsterDbtTranslator):
    """dbt models keep dagster-dbt's keys; groups follow the folders (staging, intermediate, marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "model":
            return dbt_resource_props["fqn"][1]
        return super().get_group_name(dbt_resource_props)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("model.") and unique_id.split(".")[-1] in BILLING_STAGING:
            spec = spec.replace_attributes(deps=[dg.AssetDep(key) for key in BILLING_KEYS.values()])
        return spec


translator = HaltonDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(manifest=manifest_path(), dagster_dbt_translator=translator, name="halton_dbt")
def halton_dbt(context: dg.AssetExecutionContext, dbt: HaltonDbtResource):
    yield from dbt.cli(dbt.build_args(), context=context).stream()


meter_requests = dg.AssetSpec(
    REQUESTS,
    description="Every metered call, written by the cloud API's ingestion (POST /v1/requests/batch).",
    group_name="sources",
    kinds={"clickhouse"},
)

HISTORY_MARTS = (dg.AssetKey(["prompt_clusters"]), dg.AssetKey(["model_usage_30d"]))

# Written by the optimisation checks (defs/recommendations.py), from the history marts.
RECOMMENDATIONS = dg.AssetKey(["recommendations"])
# Evaluated after every marts build (defs/alert_assets.py), from budget_variance and spend_anomalies.
BUDGET_ALERTS = dg.AssetKey(["budget_alerts"])
ANOMALY_ALERTS = dg.AssetKey(["anomaly_alerts"])
# What an ordinary marts run builds: the control-plane copy, the models that follow ingestion, the budget alerts.
ROUTINE_MARTS = sorted(
    (set(control_plane_snapshot.keys) | set(halton_dbt.keys) | {BUDGET_ALERTS, ANOMALY_ALERTS})
    - set(HISTORY_MARTS)
)

# Every job that runs dbt carries this tag; the deployment's run queue (halton_api.orchestration, the
# instance's QueuedRunCoordinator) runs one run with it at a time, whoever asked for it.
DBT_RUN_TAG = "halton/dbt"
DBT_RUN_TAGS = {DBT_RUN_TAG: "build"}

MARTS_JOB = "halton_marts"
# The newest `ingested_at` (as the warehouse prints it) a marts run was asked for: the sensor's cursor.
INGESTED_THROUGH = "halton/ingested_through"
# Who started a run outside the daemon: FIRST_BUILD for `up --demo`'s (halton_pipelines.first_build).
STARTED_BY = "halton/started_by"
FIRST_BUILD = "up"

# Steps run in the run's own process: a step process per asset would start Python and load these
# definitions once more (10-20 s on a busy 2-core machine) for work that is sequential anyway.
marts_job = dg.define_asset_job(
    MARTS_JOB,
    selection=dg.AssetSelection.assets(control_plane_snapshot)
    | dg.AssetSelection.assets(halton_dbt)
    | dg.AssetSelection.assets(RECOMMENDATIONS)
    | dg.AssetSelection.assets(BUDGET_ALERTS, ANOMALY_ALERTS),
    executor_def=dg.in_process_executor,
    tags=DBT_RUN_TAGS,
    description="Copy the control plane, then build the dbt models that follow ingestion, with their tests, "
    "then evaluate the budget alerts and runaway anomalies (the very first run of a deployment also builds the history marts and "
    "the recommendations).",
)

history_marts_job = dg.define_asset_job(
    "halton_history_marts",
    selection=dg.AssetSelection.assets(*HISTORY_MARTS),
    executor_def=dg.in_process_executor,
    tags=DBT_RUN_TAGS,
    description="Rebuild the marts that read all history: prompt clusters and the 30-day model usage.",
)

# dbt jobs: one at a time, whichever asked (the first recommendations job is defs/recommendations.py's).
DBT_JOBS = frozenset({MARTS_JOB, "halton_history_marts", "halton_first_recommendations"})
# The history marts are rebuilt by a marts run once they are this old (and hourly when nothing arrives).
HISTORY_MAX_AGE_SECONDS = 3600


@dg.schedule(
    name="history_marts_hourly",
    job=history_marts_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def history_marts_hourly(context: dg.ScheduleEvaluationContext):
    """Skipped while a dbt run is in flight: the next marts run rebuilds stale history marts anyway."""
    running = marts_run_in_flight(context.instance)
    if running is not None:
        return dg.SkipReason(f"dbt run {running.run_id} is in flight")
    return dg.RunRequest()


IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def built_through(instance: dg.DagsterInstance) -> str | None:
    """The rows the newest successful marts run was asked to cover (its INGESTED_THROUGH tag), if it says.

    A sensor with no cursor yet starts from there: `up --demo` builds the demo's marts before the daemon
    starts (`halton_pipelines.first_build`), and a second run over the same rows would only redo them."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=MARTS_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    return runs[0].tags.get(INGESTED_THROUGH) if runs else None


def marts_run_in_flight(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """The dbt run (marts, history marts, first recommendations) not finished yet, if any. The sensor and the
    schedules all ask before requesting one, so dbt runs never overlap: a build beside another only doubles
    the work (and the wait)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT))
    # A first build has always finished before the daemon starts: one still "in flight" was killed with
    # its process, and must not hold every later run back.
    return next((r for r in runs if r.job_name in DBT_JOBS and r.tags.get(STARTED_BY) != FIRST_BUILD), None)


@dg.schedule(
    name="marts_every_15_minutes",
    job=marts_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def marts_every_15_minutes(context: dg.ScheduleEvaluationContext):
    """The safety net behind the sensor (billing pulls, snapshots of the control plane); skipped while a
    marts run is in flight, which brings those in anyway."""
    running = marts_run_in_flight(context.instance)
    if running is not None:
        return dg.SkipReason(f"marts run {running.run_id} is in flight: it covers this tick")
    return marts_request(context.instance)


def marts_request(instance: dg.DagsterInstance, **kwargs: Any) -> dg.RunRequest:
    """A marts run: the routine selection, plus the history marts when they are over an hour old (so their
    hourly rebuild never runs beside a marts run), or everything while the deployment has no recommendations
    yet, so a first run (`up --demo`) fills the clusters and optimisation pages in the same dbt invocation
    instead of a second run launched after it."""
    first = instance.get_latest_materialization_event(RECOMMENDATIONS) is None
    history = instance.get_latest_materialization_event(HISTORY_MARTS[0])
    stale = history is None or time.time() - history.timestamp > HISTORY_MAX_AGE_SECONDS
    if first:
        return dg.RunRequest(**kwargs)
    return dg.RunRequest(asset_selection=ROUTINE_MARTS + (list(HISTORY_MARTS) if stale else []), **kwargs)


# A run waits for ingestion to pause this long (a first sync or the demo sends its batches back to back: one
# run after the last batch, not one on the first batches and another for the rest), but never keeps rows
# waiting longer than MAX_WAIT_SECONDS under a steady stream.
QUIET_SECONDS = 5
MAX_WAIT_SECONDS = 90


# Checked every 10 s: the query is one max() over raw.requests' primary key, and a minute's wait after a
# first sync is a minute of empty dashboards.
@dg.sensor(job=marts_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def marts_after_ingestion(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Ask for a marts run when raw.requests received rows since the last run this sensor asked for.

    While a marts run is in flight (the sensor's or the schedule's) the sensor waits (its cursor stays put),
    so a steady stream of batches leads to one run after another, never to runs side by side or a pile of
    runs queued behind each other: the requests that arrive meanwhile coalesce into the next run."""
    running = marts_run_in_flight(context.instance)
    if running is not None:
        return dg.SkipReason(f"marts run {running.run_id} is still in flight")
    built = context.cursor or built_through(context.instance)
    since = built or "1970-01-01 00:00:00.000"
    row = (
        warehouse.client()
        .query(
            "SELECT toString(max(ingested_at)), count() > 0,"
            " dateDiff('millisecond', max(ingested_at), now64(3)) / 1000,"
            " dateDiff('millisecond', minIf(ingested_at, ingested_at > toDateTime64({since:String}, 3, 'UTC')),"
            f" now64(3)) / 1000 FROM {warehouse.databases.raw}.requests",
            parameters={"since": since},
        )
        .result_rows[0]
    )
    newest, any_rows, quiet_for, waiting_for = row[0], bool(row[1]), float(row[2]), float(row[3])
    if not any_rows:
        return dg.SkipReason("raw.requests is empty")
    if built == newest:
        return dg.SkipReason(f"nothing ingested since {newest}")
    if quiet_for < QUIET_SECONDS and waiting_for < MAX_WAIT_SECONDS:
        return dg.SkipReason(
            f"batches still arriving (the last {quiet_for:.0f} s ago): one run for all of them"
        )
    context.update_cursor(newest)
    return marts_request(context.instance, run_key=f"ingested-{newest}", tags={INGESTED_THROUGH: newest})


defs = dg.Definitions(
    assets=[halton_dbt, meter_requests],
    jobs=[marts_job, history_marts_job],
    schedules=[marts_every_15_minutes, history_marts_hourly],
    sensors=[marts_after_ingestion],
)
