"""The optimisation checks as a Dagster asset, run hourly after the history marts it reads.

The asset reads the 30-day usage and the prompt clusters (rebuilt hourly at :07 by `history_marts_hourly`)
and the priced calls behind them, and writes the full set of recommendations to `marts.recommendations`
(see `halton_pipelines.recommendations`). It runs at :20 so the marts of the hour are in place.
"""

import dagster as dg

from halton_pipelines.defs.dbt import DBT_RUN_TAGS, marts_run_in_flight
from halton_pipelines.recommendations.run import run_recommendations
from halton_pipelines.recommendations.window_usage import staging_database
from halton_pipelines.resources import WarehouseResource

RECOMMENDATIONS = dg.AssetKey(["recommendations"])
# The dbt models the checks read: the 30-day usage (window, workspaces), the clusters (loops), the priced
# calls (token splits, gaps, samples) and the windowed price card.
READS = (
    dg.AssetKey(["model_usage_30d"]),
    dg.AssetKey(["prompt_clusters"]),
    dg.AssetKey(["staging", "int_requests_priced"]),
    dg.AssetKey(["staging", "int_model_prices_windowed"]),
)


@dg.asset(
    key=RECOMMENDATIONS,
    deps=list(READS),
    group_name="marts",
    kinds={"python", "clickhouse"},
    description="Optimisation recommendations over the last 30 days: the change, its saving per month, the "
    "evidence and the baseline it quoted (one full set per run; read the newest run per workspace).",
)
def recommendations(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    client = warehouse.client()
    summary = run_recommendations(
        client, warehouse.databases.marts, staging_database(warehouse.database_prefix)
    )
    saving = sum((r.monthly_saving_usd for r in summary.recommendations), 0)
    kinds: dict[str, int] = {}
    for r in summary.recommendations:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    context.log.info(
        "recommendations run %s: %d recommendations in %d workspaces, $%s a month",
        summary.run_id,
        len(summary.recommendations),
        len(summary.per_workspace),
        saving,
    )
    return dg.MaterializeResult(
        metadata={
            "run_id": str(summary.run_id),
            "window": f"{summary.window.start} to {summary.window.end}" if summary.window else "no usage yet",
            "recommendations": len(summary.recommendations),
            "workspaces": len(summary.per_workspace),
            "monthly_saving_usd": str(saving),
            "by_kind": dg.MetadataValue.json(dict(sorted(kinds.items()))),
            "left_out_too_large": summary.too_large,
        }
    )


recommendations_job = dg.define_asset_job(
    "halton_recommendations",
    selection=dg.AssetSelection.assets(recommendations),
    executor_def=dg.in_process_executor,
    description="Run the optimisation checks over the 30-day marts and write the current recommendations.",
)

recommendations_hourly = dg.ScheduleDefinition(
    name="recommendations_hourly",
    job=recommendations_job,
    cron_schedule="20 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# The marts every ingestion run builds; once they exist, the hourly-only assets can be built the first time.
FIRST_MARTS = dg.AssetKey(["daily_spend"])
HISTORY_MARTS = (dg.AssetKey(["prompt_clusters"]), dg.AssetKey(["model_usage_30d"]))

first_build_job = dg.define_asset_job(
    "halton_first_recommendations",
    selection=dg.AssetSelection.assets(*HISTORY_MARTS) | dg.AssetSelection.assets(recommendations),
    executor_def=dg.in_process_executor,
    tags=DBT_RUN_TAGS,
    description="Build the hourly marts and the recommendations for the first time.",
)


@dg.sensor(job=first_build_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def first_recommendations(context: dg.SensorEvaluationContext):
    """Right after the first marts run of a fresh deployment (a new `halton-cloud up --demo`, say), build the
    prompt clusters, the 30-day usage and the recommendations once, instead of leaving the optimisation
    pages empty until the hourly schedules come round."""
    instance = context.instance
    if instance.get_latest_materialization_event(RECOMMENDATIONS) is not None:
        return dg.SkipReason("recommendations exist: the hourly schedule keeps them fresh")
    running = marts_run_in_flight(instance)
    if running is not None:  # the first marts run builds them too: wait for its outcome
        return dg.SkipReason(f"marts run {running.run_id} is in flight")
    marts = instance.get_latest_materialization_event(FIRST_MARTS)
    if marts is None:
        return dg.SkipReason("waiting for the first marts run")
    # Keyed by the marts run: a first build that failed is asked for again after the next marts run.
    return dg.RunRequest(run_key=f"first-recommendations-{marts.run_id}")


defs = dg.Definitions(
    assets=[recommendations],
    jobs=[recommendations_job, first_build_job],
    schedules=[recommendations_hourly],
    sensors=[first_recommendations],
)
