"""Billing pulls: what each provider billed per day, for every workspace with a connected admin key.

One daily-partitioned asset per provider (OpenAI, Anthropic, xAI). A partition pulls one UTC day's costs
(and token usage, where the provider has a usage endpoint) for every workspace connected to the provider and
writes them as one pull: re-running a day replaces what earlier pulls said about it. A workspace whose pull
fails does not stop the others; the run then fails, naming each workspace and why.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg

from halton_meter.billing_apis.billing_contract import BilledLine, BillingAPIError, Credentials, UsageLine
from halton_pipelines.provider_keys import BILLING_PROVIDERS
from halton_pipelines.resources import BillingClientsResource, ProviderKeysResource, WarehouseResource
from halton_warehouse.raw_writes import CostLine, TokenLine, write_cost_lines, write_token_lines

BILLING_START = "2025-01-01"
# Partitions end with yesterday (UTC): today's bill is not final.
daily = dg.DailyPartitionsDefinition(start_date=BILLING_START, timezone="UTC")

PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "xai": "xAI"}
KEYS = {provider: dg.AssetKey(["billing", f"{provider}_billing"]) for provider in BILLING_PROVIDERS}
# Days re-pulled by the daily schedule: providers adjust the last few days' figures.
REPULL_DAYS = 3


def pull_day(
    context: dg.AssetExecutionContext,
    provider: str,
    day: date,
    warehouse: WarehouseResource,
    provider_keys: ProviderKeysResource,
    billing_apis: BillingClientsResource,
) -> dg.MaterializeResult:
    connections, problems = provider_keys.connections(provider)
    api = billing_apis.client(provider)
    costs: dict[tuple, list[BilledLine]] = defaultdict(list)
    usage: dict[tuple, list[UsageLine]] = defaultdict(list)
    pulled = []
    for connection in connections:
        credentials = Credentials(connection.admin_key, connection.team_id)
        try:
            billed = api.costs(credentials, day)
            counted = api.usage(credentials, day)
        except BillingAPIError as error:
            problems.append(f"workspace {connection.workspace_id}: {error}")
            provider_keys.record_pull(connection, day, str(error))
            context.log.error(
                "%s billing for workspace %s on %s: %s", provider, connection.workspace_id, day, error
            )
            continue
        pulled.append(connection.workspace_id)
        provider_keys.record_pull(connection, day, None)
        for line in billed:
            costs[(connection.workspace_id, line.line_item, line.provider_project, line.currency)].append(
                line
            )
        for line in counted:
            usage[(connection.workspace_id, line.model, line.provider_project)].append(line)

    pulled_at = datetime.now(UTC)
    cost_lines = [
        CostLine(
            workspace, provider, day, api.source, item, sum((x.amount for x in lines), Decimal(0)),
            model=lines[0].model, provider_project=project, currency=currency,
        )
        for (workspace, item, project, currency), lines in costs.items()
    ]  # fmt: skip
    token_lines = [
        TokenLine(
            workspace, provider, day, api.source, model,
            input_tokens=sum(x.input_tokens for x in lines),
            cached_input_tokens=sum(x.cached_input_tokens for x in lines),
            cache_write_tokens=sum(x.cache_write_tokens for x in lines),
            output_tokens=sum(x.output_tokens for x in lines),
            requests=None if any(x.requests is None for x in lines) else sum(x.requests or 0 for x in lines),
            provider_project=project,
        )
        for (workspace, model, project), lines in usage.items()
    ]  # fmt: skip
    client = warehouse.client()
    written = write_cost_lines(
        client, warehouse.databases, cost_lines,
        days=[(workspace, provider, day, api.source) for workspace in pulled], pulled_at=pulled_at,
    )  # fmt: skip
    write_token_lines(client, warehouse.databases, token_lines, pulled_at=pulled_at)
    billed_usd = sum((line.amount for line in cost_lines if line.currency == "USD"), Decimal(0))
    metadata = {
        "day": day.isoformat(),
        "workspaces_pulled": len(pulled),
        "cost_lines": written,
        "usage_lines": len(token_lines),
        "billed_usd": str(billed_usd),
    }
    if problems:
        raise dg.Failure(
            description=f"{PROVIDER_NAMES[provider]} billing for {day} failed for {len(problems)} workspace(s): "
            + "; ".join(problems),
            metadata={**metadata, "failures": "\n".join(problems)},
        )
    return dg.MaterializeResult(metadata=metadata)


def billing_asset(provider: str) -> dg.AssetsDefinition:
    name = PROVIDER_NAMES[provider]

    @dg.asset(
        key=KEYS[provider],
        partitions_def=daily,
        group_name="billing",
        kinds={"python", "clickhouse"},
        description=f"What {name} billed each UTC day, per workspace with a connected admin key "
        f"(raw.provider_costs, raw.provider_usage).",
    )
    def _billing(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        provider_keys: ProviderKeysResource,
        billing_apis: BillingClientsResource,
    ) -> dg.MaterializeResult:
        return pull_day(
            context,
            provider,
            date.fromisoformat(context.partition_key),
            warehouse,
            provider_keys,
            billing_apis,
        )

    return _billing


billing_assets = [billing_asset(provider) for provider in BILLING_PROVIDERS]

billing_job = dg.define_asset_job("billing_daily", selection=dg.AssetSelection.assets(*billing_assets))


@dg.schedule(
    job=billing_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def billing_daily_schedule(context: dg.ScheduleEvaluationContext):
    """Every morning: yesterday's bill, and the two days before it again (providers adjust late)."""
    today = context.scheduled_execution_time.astimezone(UTC).date()
    for back in range(1, REPULL_DAYS + 1):
        key = (today - timedelta(days=back)).isoformat()
        yield dg.RunRequest(run_key=f"{key}@{today.isoformat()}", partition_key=key)


defs = dg.Definitions(assets=billing_assets, jobs=[billing_job], schedules=[billing_daily_schedule])
