"""Scheduled exports: each UTC day's raw requests and spend marts as Parquet, to every workspace's bucket.

A daily-partitioned asset: a partition writes one day for every workspace with an export destination
(halton_pipelines.day_export). A workspace whose export fails does not stop the others; each outcome goes to
its settings page and audit log, and the run then fails naming each workspace and why.
"""

from datetime import UTC, date, timedelta

import dagster as dg

from halton_pipelines.day_export import ExportError, export_day
from halton_pipelines.defs.billing_pulls import BILLING_START
from halton_pipelines.resources import ExportDestinationsResource, WarehouseResource

daily = dg.DailyPartitionsDefinition(start_date=BILLING_START, timezone="UTC")
KEY = dg.AssetKey(["exports", "parquet_export"])


@dg.asset(
    key=KEY,
    partitions_def=daily,
    group_name="exports",
    kinds={"python", "parquet", "s3"},
    # Lineage only: the export reads what these hold when it runs (the schedule runs after the marts' builds).
    deps=[dg.AssetKey(["meter", "requests"]), dg.AssetKey(["daily_spend"]), dg.AssetKey(["project_spend"])],
    description="Each day's raw requests, daily_spend and project_spend as Parquet, with a manifest, in each "
    "workspace's own S3-compatible bucket.",
)
def parquet_export(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    export_destinations: ExportDestinationsResource,
) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    client = warehouse.client()
    problems: list[str] = []
    exported, files, rows = 0, 0, 0
    for destination in export_destinations.destinations():
        try:
            if destination.unreadable:
                raise ExportError(destination.unreadable)
            written = export_day(client, warehouse.databases, destination, day)
        except ExportError as error:
            problems.append(f"workspace {destination.workspace_id}: {error}")
            export_destinations.record_run(destination, day, objects=0, error=str(error))
            context.log.error("export of %s for workspace %s: %s", day, destination.workspace_id, error)
            continue
        exported += 1
        files += len(written) + 1
        rows += sum(f.rows for f in written)
        export_destinations.record_run(destination, day, objects=len(written) + 1, error=None)
    metadata = {"day": day.isoformat(), "workspaces_exported": exported, "objects": files, "rows": rows}
    if problems:
        raise dg.Failure(
            description=f"export of {day} failed for {len(problems)} workspace(s): " + "; ".join(problems),
            metadata={**metadata, "failures": "\n".join(problems)},
        )
    return dg.MaterializeResult(metadata=metadata)


exports_job = dg.define_asset_job("exports_daily", selection=dg.AssetSelection.assets(parquet_export))


@dg.schedule(
    job=exports_job,
    cron_schedule="30 7 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def exports_daily_schedule(context: dg.ScheduleEvaluationContext):
    """Every morning, after the billing pulls and the marts build: yesterday."""
    day = (context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)


defs = dg.Definitions(assets=[parquet_export], jobs=[exports_job], schedules=[exports_daily_schedule])
