"""Budget alerts and runaway spend as Dagster assets: evaluated after every marts build (they follow
budget_variance and spend_anomalies in the marts job) and hourly, delivering what is due (new alerts and
anomalies, and retries whose backoff has passed) each time."""

from datetime import UTC, datetime

import dagster as dg

from halton_pipelines.alerts.anomalies import current_anomalies, raise_anomalies
from halton_pipelines.alerts.deliver import deliver_due
from halton_pipelines.alerts.evaluate import current_months, raise_alerts
from halton_pipelines.resources import AlertsResource, WarehouseResource

BUDGET_ALERTS = dg.AssetKey(["budget_alerts"])
ANOMALY_ALERTS = dg.AssetKey(["anomaly_alerts"])


@dg.asset(
    key=BUDGET_ALERTS,
    deps=[dg.AssetKey(["budget_variance"])],
    group_name="marts",
    kinds={"python", "postgres"},
    description="Budget alerts (50/80/100% of the month and forecast breaches) raised once each and delivered "
    "by webhook and email, with retries.",
)
def budget_alerts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> dg.MaterializeResult:
    months = current_months(warehouse.client(), warehouse.databases.marts)
    raised = raise_alerts(alerts.database_url, months)
    sent = _deliver_due(alerts)
    context.log.info("budget alerts: %d budgets, %d raised, deliveries %s", len(months), len(raised), sent)
    return dg.MaterializeResult(metadata={"budgets": len(months), "raised": len(raised), **sent})


@dg.asset(
    key=ANOMALY_ALERTS,
    deps=[dg.AssetKey(["spend_anomalies"])],
    group_name="marts",
    kinds={"python", "postgres"},
    description="Runaway spend (loops, and projects or devices far above their weekday-hour baseline) raised "
    "once per anomaly with its evidence and delivered through the alert channels.",
)
def anomaly_alerts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> dg.MaterializeResult:
    found = current_anomalies(warehouse.client(), warehouse.databases.marts)
    raised = raise_anomalies(alerts.database_url, found)
    sent = _deliver_due(alerts)
    context.log.info("anomalies: %d in the marts, %d raised, deliveries %s", len(found), len(raised), sent)
    return dg.MaterializeResult(metadata={"anomalies": len(found), "raised": len(raised), **sent})


def _deliver_due(alerts: AlertsResource) -> dict[str, int]:
    """Send everything due on the alert channels (new alerts and anomalies alike, and retries whose backoff
    has passed): whichever asset runs second in a marts run finds nothing left but what failed meanwhile."""
    return deliver_due(
        alerts.database_url, alerts.secret_key, now=datetime.now(UTC), backoff_seconds=alerts.backoff_seconds
    )


budget_alerts_job = dg.define_asset_job(
    "halton_budget_alerts",
    selection=dg.AssetSelection.assets(budget_alerts, anomaly_alerts),
    executor_def=dg.in_process_executor,
    description="Evaluate the budgets against the month so far and the runaway anomalies, and deliver the "
    "alerts due.",
)

budget_alerts_hourly = dg.ScheduleDefinition(
    name="budget_alerts_hourly",
    job=budget_alerts_job,
    cron_schedule="30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[budget_alerts, anomaly_alerts], jobs=[budget_alerts_job], schedules=[budget_alerts_hourly]
)
