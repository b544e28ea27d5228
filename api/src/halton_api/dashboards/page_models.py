"""What the dashboards return: each page's JSON twin is one of these, and its template renders the same object."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


class PeriodPublic(BaseModel):
    label: str
    start: datetime
    end: datetime = Field(description="Exclusive.")
    granularity: Literal["hour", "day", "week", "month"]
    compared_with: str = Field(
        default="",
        description="The previous period its changes compare with, in words and dates: a month to date "
        "against the same days of last month, a whole month against the month before, any other period "
        "against the same length just before it.",
    )


class Totals(BaseModel):
    spend_usd: Decimal = Decimal(0)
    requests: int = 0
    error_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def cost_per_request(self) -> Decimal | None:
        return self.spend_usd / self.requests if self.requests else None


class Change(BaseModel):
    """A figure against the same figure one period earlier."""

    current_usd: Decimal
    previous_usd: Decimal
    change_usd: Decimal
    change_pct: Decimal | None = Field(description="Null when the previous figure is zero.")


class Ranked(BaseModel):
    """One row of a top-N list or breakdown table."""

    key: str
    label: str
    spend_usd: Decimal
    requests: int
    share_pct: Decimal
    input_tokens: int = 0
    output_tokens: int = 0
    detail: str = ""
    href: str | None = None


class SeriesPublic(BaseModel):
    name: str
    values: list[Decimal]


class TimeSeries(BaseModel):
    buckets: list[str] = Field(description="Bucket starts, ISO 8601 (UTC).")
    series: list[SeriesPublic]
    baseline: SeriesPublic | None = None
    requests: list[int] | None = None


class BudgetStatus(BaseModel):
    scope: Literal["workspace", "project", "projects", "cost center", "cost centers"]
    monthly_budget_usd: Decimal
    month_to_date_usd: Decimal
    variance_usd: Decimal
    variance_pct: Decimal | None
    projected_usd: Decimal
    projection_basis: str = Field(
        description="What the month-end projection follows (as the budget alerts say): the run rate alone, or "
        "the run rate and the same days of earlier months."
    )
    status: Literal["under", "at_risk", "over"]
    covers: str | None = Field(
        default=None,
        description="What spend the budget is compared with when the rail filters what it cannot.",
    )


class DeviceSync(BaseModel):
    device_id: UUID
    name: str
    hostname: str
    member: str | None
    last_sync_at: datetime | None
    # The meter's own state (NOT-REPORTING: it has been silent too long to say).
    state: Literal["ACTIVE", "DEGRADED", "PAUSED", "NOT-REPORTING"]
    paused_reason: str | None = None
    unsynced_rows: int | None = None  # None: not reported
    reported_at: datetime | None = None
    meter_version: str | None = None
    # Where the state comes from: the meter's report, or the control plane (a revoked or removed device).
    source: Literal["meter", "control_plane"] = "meter"


class SyncStatus(BaseModel):
    status: Literal["green", "amber", "red", "none"]
    summary: str
    devices: list[DeviceSync]


class RailOption(BaseModel):
    value: str
    label: str
    group: str = ""
    provider: str = ""  # a model's provider: the list shows only the chosen providers' models
    includes: list[str] = Field(default_factory=list)  # dated snapshot ids folded under this model


class UnpricedModel(BaseModel):
    """Answered calls of one model the marts could not price in the period, and what would price them."""

    provider: str
    model: str
    requests: int
    catalogue_version: str = Field(description="The cloud's price catalogue in force.")
    in_catalogue: bool = Field(description="Whether that catalogue has a price for the model.")
    message: str = Field(description='e.g. "3 calls of claude-opus-9 unpriced (no price in catalogue …)".')


class OverviewPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    today_usd: Decimal
    this_month_usd: Decimal
    last_month_usd: Decimal
    period_totals: Totals
    period_change: Change
    budget: BudgetStatus | None
    budget_note: str | None = Field(
        default=None, description="Why no budget applies (when `budget` is null)."
    )
    spend_by_provider: TimeSeries
    top_projects: list[Ranked]
    top_models: list[Ranked]
    unpriced: list[UnpricedModel] = Field(description="Models with unpriced calls, most calls first.")
    sync: SyncStatus


class RequestRowPublic(BaseModel):
    """A priced request as the recent-requests tables show it."""

    request_uid: UUID
    started_at: datetime
    provider: str
    model: str
    project: str
    device_id: UUID
    device: str
    status_code: int | None
    streamed: bool
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal
    cost_source: str
    latency_ms: int | None
    provider_request_id: str | None


class RequestTable(BaseModel):
    rows: list[RequestRowPublic]
    next_cursor: str | None
    search: str | None = None


class ProjectInfo(BaseModel):
    slug: str
    name: str
    project_id: UUID | None
    cost_center: str | None
    hourly_rate_usd: Decimal | None
    archived: bool
    monthly_budget_usd: Decimal | None


class ProjectViewPublic(BaseModel):
    workspace: str
    project: ProjectInfo
    filters: dict[str, Any]
    period: PeriodPublic
    totals: Totals
    change: Change
    budget: BudgetStatus | None
    budget_note: str | None = Field(
        default=None, description="Why no budget applies (when `budget` is null)."
    )
    spend_over_time: TimeSeries
    by_developer: list[Ranked]
    by_model: list[Ranked]
    volume: TimeSeries
    recent_requests: RequestTable


class ProjectsPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    totals: Totals
    projects: list[Ranked]


class TracePublic(BaseModel):
    request_uid: UUID
    workspace: str
    started_at: datetime
    ended_at: datetime
    latency_ms: int | None
    ttfb_ms: int | None
    provider: str
    endpoint: str
    model: str
    model_requested: str | None
    model_served: str | None
    status_code: int | None
    streamed: bool
    complete: bool
    service_tier: str | None
    batch: bool
    project: str
    attribution_tier: str
    prompt_hash: str | None
    provider_request_id: str | None
    device_id: UUID
    machine_id: str
    device_name: str | None
    device_hostname: str | None
    paired_by: str | None
    batch_id: UUID
    ingested_at: datetime
    tokens: dict[str, int | None]
    price_card: str | None
    card_model: str | None
    price_valid_from: datetime | None
    above_tier: bool
    rates_per_mtok: dict[str, Decimal | None]
    rate_multiplier: Decimal | None
    cost_lines: list[dict[str, Any]]
    logged_cost_usd: Decimal | None
    repriced_cost_usd: Decimal | None
    cost_usd: Decimal
    cost_source: str
    repricing_delta_usd: Decimal | None


class ReconciliationRow(BaseModel):
    period: date
    period_label: str
    provider: str | None = Field(description="Null on the all-providers row of a period.")
    provider_label: str = ""
    requests: int
    logged_usd: Decimal
    billed_usd: Decimal | None
    billed_source: str = Field(description="billing_api, statement, mixed (all-providers row) or none.")
    variance_usd: Decimal | None
    variance_pct: Decimal | None
    status: str = Field(
        description="sage, amber or red when every logged dollar has a bill; partial when some logged spend "
        "has none (billed_status colours the billed part); unbilled when nothing has a bill."
    )
    divergent_days: int = 0
    compared_logged_usd: Decimal | None = Field(
        default=None,
        description="What was logged for the providers that have a bill: what the variance compares "
        "(differs from logged_usd when a provider has no bill yet).",
    )
    unbilled_providers: list[str] = Field(
        default_factory=list,
        description="Providers with logged spend no bill covers yet (no bill, or billing-API days without lines).",
    )
    unbilled_logged_usd: Decimal = Field(
        default=Decimal(0), description="logged_usd - compared_logged_usd: logged spend no bill covers yet."
    )
    covers: str = Field(
        default="", description="The days the figures cover, e.g. '01 Nov 2026 - 30 Nov 2026 (whole month)'."
    )
    providers: list[str] = Field(default_factory=list, description="Every provider the row's figures cover.")
    billed_providers: list[str] = Field(
        default_factory=list, description="The providers with a bill: the ones the variance compares."
    )
    coverage_pct: Decimal | None = Field(
        default=None, description="Share of the logged spend that has a bill (None when nothing was logged)."
    )
    coverage: str = Field(
        default="", description='In words, e.g. "billed data for 3 of 4 providers, 82% of logged spend".'
    )
    billed_status: str = Field(
        default="unbilled", description="The colour of the billed part alone (sage, amber, red or unbilled)."
    )
    href: str | None = None


class ReconciliationDay(BaseModel):
    day: date
    provider: str
    requests: int
    logged_usd: Decimal
    billed_usd: Decimal | None
    variance_usd: Decimal | None
    variance_pct: Decimal | None
    status: str
    repricing_delta_usd: Decimal
    unpriced_requests: int


class DivergentRequest(BaseModel):
    request_uid: UUID
    day: date
    provider: str
    started_at: datetime
    model: str
    project: str
    provider_request_id: str | None
    price_card: str | None
    input_tokens: int | None
    output_tokens: int | None
    logged_cost_usd: Decimal | None
    repriced_cost_usd: Decimal | None
    repricing_delta_usd: Decimal | None
    repricing_differs: bool
    day_status: str = ""
    card_model: str | None = None
    cost_source: str = ""


class ReconciliationProjectRow(ReconciliationRow):
    """One of our projects' month with one provider (or all its providers, `provider` None): what was logged
    for the project against the lines of the provider projects/workspaces mapped to it."""

    project: str = Field(description="Our project's slug.")
    project_name: str
    mapped: bool = Field(
        description="A provider project/workspace of this provider is mapped to the project (on the total "
        "row: any provider is)."
    )
    provider_projects: list[str] = Field(
        default_factory=list, description="The provider's project/workspace ids mapped to the project."
    )


class UnmappedBillingRow(BaseModel):
    """A provider's billed lines in a month whose provider project/workspace no one mapped to a project:
    never compared with any project's logged spend."""

    period: date
    period_label: str
    provider: str
    provider_label: str
    provider_projects: list[str] = Field(description="The provider's project/workspace ids nobody mapped.")
    billed_usd: Decimal
    status: str = "unmapped"


class ProviderConnectionPublic(BaseModel):
    provider: str
    provider_label: str
    connected: bool = Field(description="An admin key is stored for the provider's billing API.")
    key_prefix: str | None
    created_at: datetime | None
    revoked_at: datetime | None
    live: bool = Field(description="Connected and not revoked: the billing pulls use it.")
    last_billed_day: date | None = Field(description="The newest day the billing API has billed lines for.")
    statements: int = Field(0, description="Pasted statements for this provider.")
    last_pull_at: datetime | None = Field(
        None, description="When the pipelines last pulled with the live key."
    )
    last_pull_day: date | None = Field(None, description="The day that pull asked the provider for.")
    last_pull_error: str | None = Field(None, description="The provider's error on that pull, in its words.")
    status: str | None = Field(None, description="The live key's state in words (last test or pull).")
    key_unreadable: bool = Field(
        False,
        description="The live key does not decrypt with the server's secret: an owner must re-enter it.",
    )


class StatementRevisionPublic(BaseModel):
    amount_usd: Decimal
    note: str
    entered_by: str | None
    entered_at: datetime


class StatementPublic(BaseModel):
    provider: str
    period: date
    amount_usd: Decimal
    note: str
    entered_by: str | None
    entered_at: datetime
    corrections: list[StatementRevisionPublic] = Field(
        default_factory=list, description="The versions this one corrected, newest first."
    )


class StatementCreate(BaseModel):
    provider: str
    period: date = Field(description="First day of the statement's month.")
    amount_usd: Decimal
    note: str = ""


class ReconciliationPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    periods: list[ReconciliationRow] = Field(
        description="Per month, newest first: the all-providers row, then one row per provider."
    )
    connections: list[ProviderConnectionPublic]
    statements: list[StatementPublic]
    thresholds: dict[str, str]
    ignored_filters: list[str] = Field(
        default_factory=list, description="Rail filters set that billing cannot be split by."
    )
    projects: list[ReconciliationProjectRow] = Field(
        default_factory=list,
        description="Per month and project (the rail's projects, else every project with spend or a mapping): "
        "the all-providers row, then one row per provider, billed from the provider projects mapped to it.",
    )
    unmapped: list[UnmappedBillingRow] = Field(
        default_factory=list,
        description="Billed lines of provider projects no one mapped, per provider and month.",
    )
    projects_built: bool = Field(
        default=True,
        description="False until the marts' first run after an upgrade builds the per-project figures.",
    )


class ReconciliationPeriodPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: date
    period_label: str
    rows: list[ReconciliationRow]
    days: list[ReconciliationDay]
    requests: list[DivergentRequest]
    requests_total: int
    offset: int
    page_size: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")
    previous_cursor: str | None = None
    search: str | None = None
    ignored_filters: list[str] = Field(default_factory=list)


class ExecutivePublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    this_month_usd: Decimal
    last_month_usd: Decimal
    year_to_date_usd: Decimal
    month_over_month: Change = Field(description="This month (so far) against the whole of last month.")
    same_point_last_month: Change = Field(description="This month so far against last month to the same day.")
    month_to_date_compared_with: str = Field(
        default="", description="The days `same_point_last_month` compares with, in words (Period.previous)."
    )
    period_total_usd: Decimal
    top_projects: list[Ranked] = Field(description="The rail's period, with each one's share of its spend.")
    reconciliation: ReconciliationRow | None = Field(
        description="The latest complete month's all-providers reconciliation row: the reconciliation page's "
        "row for the same month and providers."
    )
    reconciliation_ignores: list[str] = Field(
        default_factory=list,
        description="Rail filters the reconciliation cannot apply (billing is per provider and month).",
    )
    budget: BudgetStatus | None
    budget_note: str | None = Field(
        default=None, description="Why no budget applies (when `budget` is null)."
    )
    monthly: TimeSeries


class CostCenterRollup(BaseModel):
    cost_center_id: UUID | None
    name: str
    projects: list[str]
    spend_usd: Decimal
    requests: int
    share_pct: Decimal
    previous_usd: Decimal
    monthly_budget_usd: Decimal | None = Field(default=None, description="The cost center's monthly budget.")
    month_to_date_usd: Decimal | None = Field(
        default=None,
        description="This calendar month's spend of its projects (every provider, model and device: what the"
        " budget covers), whatever the period and filters; set when a budget is.",
    )


class CostCentersPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    cost_centers: list[CostCenterRollup]
    over_time: TimeSeries


class ClusterPublic(BaseModel):
    prompt_hash: str
    kind: Literal["loop", "duplicate"]
    requests: int
    spend_usd: Decimal
    repeat_spend_usd: Decimal
    first_seen_at: datetime
    last_seen_at: datetime
    devices: int
    projects: list[str]
    models: list[str]
    max_requests_in_window: int
    cached_share_pct: Decimal | None = None


class ClustersPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    kind: str | None
    clusters: list[ClusterPublic]
    totals: dict[str, Decimal | int]


class OriginSpend(BaseModel):
    """Spend of one group of calls by where they came from; '' where the meter could not see it."""

    key: str
    spend_usd: Decimal
    requests: int
    devices: int
    share_pct: Decimal
    branches: int = 0
    repository: str = ""
    ticket: str = ""
    tools: list[str] = []
    last_day: date | None = None


class BranchesPublic(BaseModel):
    """The Branches & tickets view: spend by ticket, branch and tool across every device (issue 24)."""

    workspace: str
    filters: dict[str, Any]
    period: PeriodPublic
    totals: dict[str, Decimal | int]
    tickets: list[OriginSpend]
    branches: list[OriginSpend]
    tools: list[OriginSpend]
    # The values seen in the period (before the rail's branch, ticket and tool choices): the rail's options.
    choices: dict[str, list[RailOption]]


# --- optimisation: recommendations, the catalog of checks, realised savings -----------------------------------


class RecommendationDecision(BaseModel):
    """An accept or dismiss decision on a recommendation, with the warehouse row's figures copied at the time
    (so realised savings survive the pattern disappearing from later runs)."""

    recommendation_id: UUID
    status: Literal["accepted", "dismissed"]
    decided_by: UUID | None
    decided_by_label: str
    decided_at: datetime
    run_id: UUID
    kind: str
    project: str
    provider: str
    model: str
    target_model: str
    title: str
    scope_models: list[str]
    price_card: str
    monthly_saving_usd: Decimal
    baseline_start: date
    baseline_end: date
    baseline_requests: int
    baseline_spend_usd: Decimal
    baseline_spend_per_day_usd: Decimal
    baseline_cost_per_request_usd: Decimal
    expected_saving_per_request_usd: Decimal
    realised_method: Literal["per_request", "per_day"]


class CheckSuppression(BaseModel):
    kind: str
    project: str
    suppressed_by: UUID | None
    suppressed_by_label: str
    suppressed_at: datetime


class SampleRequest(BaseModel):
    request_uid: UUID
    provider_request_id: str
    href: str = Field(description="The request's trace page.")


class RecommendationPublic(BaseModel):
    recommendation_id: UUID
    kind: str
    kind_label: str
    project: str
    provider: str
    model: str = Field(description="The price-card model the workload calls.")
    target_model: str = Field(description="Right-sizing: the cheaper sibling; empty otherwise.")
    headline: str = Field(description="The change and its saving, as a sentence.")
    title: str = Field(description="The change as the checks wrote it (card model ids).")
    explanation: str
    monthly_saving_usd: Decimal
    confidence: str
    confidence_rule: str
    affected_requests: int
    evidence: dict[str, Any]
    samples: list[SampleRequest]
    scope_models: list[str]
    baseline_start: date
    baseline_end: date = Field(description="Exclusive.")
    baseline_requests: int
    baseline_spend_usd: Decimal
    realised_method: str
    price_card: str
    status: Literal["open", "accepted", "dismissed"]
    decided_at: datetime | None = None
    decided_by: str | None = None


class OptimizationPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    computed_at: datetime | None = Field(
        description="When the newest run of the checks finished; null before any."
    )
    window_start: date | None
    window_end: date | None = Field(description="Exclusive.")
    recommendations: list[RecommendationPublic] = Field(
        description="The current recommendations in the rail's projects, providers and models, biggest saving "
        "first; recommendations of suppressed checks are left out."
    )
    open_saving_usd: Decimal = Field(
        description="Monthly saving of the shown recommendations nobody decided on."
    )
    open_count: int
    accepted_saving_usd: Decimal = Field(description="Monthly saving quoted by the shown accepted ones.")
    suppressed_hidden: int = Field(description="Current recommendations hidden by a suppressed check.")
    realised_saving_usd: Decimal | None = Field(
        description="Realised savings of every accepted recommendation so far (null when none has data yet)."
    )
    ignored_filters: list[str] = Field(
        default_factory=list, description="Rail filters set that recommendations cannot be split by."
    )


class CatalogCheck(BaseModel):
    kind: str
    kind_label: str
    project: str
    provider: str
    model: str
    first_fired_at: datetime
    last_fired_at: datetime
    times_fired: int = Field(description="Runs of the checks that found it.")
    latest_saving_usd: Decimal = Field(description="The monthly saving it quoted on its newest run.")
    latest_recommendation_id: UUID
    active: bool = Field(description="In the newest run's recommendations.")
    suppressed: bool = Field(description="The check is suppressed for this project.")
    suppressed_at: datetime | None = None
    suppressed_by: str | None = None


class OptimizationCatalogPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    checks: list[CatalogCheck] = Field(
        description="Every check that has fired, per project, provider and model."
    )
    suppressions: list[CheckSuppression]
    ignored_filters: list[str] = Field(default_factory=list)


class RealisedSaving(BaseModel):
    recommendation_id: UUID
    headline: str
    kind: str
    kind_label: str
    project: str
    provider: str
    model: str
    target_model: str
    accepted_at: datetime
    accepted_by: str
    realised_method: Literal["per_request", "per_day"]
    measured_models: list[str] = Field(description="The served model names whose usage is measured.")
    since: date = Field(description="The first day measured: the day of acceptance, counted whole.")
    days_since: int
    requests_since: int
    spend_since_usd: Decimal
    baseline_cost_per_request_usd: Decimal
    baseline_spend_per_day_usd: Decimal
    baseline_usd: Decimal | None = Field(
        description="What the same usage would have cost at the baseline (null without data since acceptance)."
    )
    realised_usd: Decimal | None = Field(
        description="Baseline minus actual spend since acceptance (negative: it cost more); null without data."
    )
    expected_usd: Decimal | None = Field(
        description="What the recommendation promised for the same calls (expected saving per request times calls)."
    )
    monthly_saving_usd: Decimal
    has_data: bool
    current: bool = Field(description="The pattern is still in the newest run of the checks (not fixed yet).")


class RealisedSavingsPublic(BaseModel):
    workspace: str
    filters: dict[str, Any]
    savings: list[RealisedSaving]
    total_realised_usd: Decimal
    total_expected_usd: Decimal
    with_data: int
    without_data: int
    ignored_filters: list[str] = Field(default_factory=list)
