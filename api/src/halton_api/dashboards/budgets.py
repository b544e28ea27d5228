"""A monthly budget against the month so far, and where the month is heading: the forecast the budget alerts
use (`halton_warehouse.budget_forecast`, the run rate combined with the shape of the same days of earlier
months), so the card and the alert say the same figure on the same basis.

Budgets are set for the workspace, per project and per cost center, never per provider, model or device. Under
a filter the card therefore compares the budget that applies with the spend that budget covers (a project's or
a cost center's whole spend, every provider), says so, and says why no budget applies when none does — never a
bare "No budget set" while budgets exist, and never a budget against a slice of the spend it covers (a false
"under")."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.charts import money
from halton_api.dashboards import spend
from halton_api.dashboards.filters import UNASSIGNED, Filters, Scope
from halton_api.dashboards.page_models import BudgetStatus
from halton_api.dashboards.reader import Marts
from halton_warehouse.budget_forecast import EarlierMonth, forecast, history_start, months_of_days

TENTH = Decimal("0.1")
NOT_BUDGETED = ("provider", "model", "device", "cost_center")  # what a workspace or project budget ignores
# A cost center's budget covers the spend of its projects: the cost center filter stays, the others go.
NOT_BUDGETED_BY_COST_CENTER = ("provider", "model", "device")
NOT_BUDGETED_WORDS = {
    "providers": "provider",
    "models": "model",
    "devices": "device",
    "cost_centers": "cost center",
}
_BY_COST_CENTER_WORDS = {k: v for k, v in NOT_BUDGETED_WORDS.items() if k != "cost_centers"}


@dataclass(frozen=True)
class BudgetChoice:
    """Which budget a view compares with and the spend it covers: the filters in `skip` are left out of that
    spend (the budget covers them all). `amount` None: no budget applies, and `note` says why."""

    amount: Decimal | None
    scope: str
    skip: tuple[str, ...]
    note: str | None


def choose_budget(
    filters: Filters,
    workspace_budget: Decimal | None,
    project_budgets: dict[str, Decimal],
    cost_centers: dict[str, tuple[str, Decimal | None]] | None = None,
) -> BudgetChoice:
    """The budget for a view under `filters` (a project page passes its project as the one project filter).
    `cost_centers`: each cost center's id (text) -> (name, monthly budget or None)."""
    centers = cost_centers or {}
    ignored = NOT_BUDGETED_WORDS if filters.projects or not filters.cost_centers else _BY_COST_CENTER_WORDS
    others = [words for name, words in ignored.items() if getattr(filters, name)]
    covers = (
        f"budgets are not set per {' or '.join(others)}, so this compares all of its spend, not the filtered slice"
        if others
        else None
    )
    workspace = (
        f"; the workspace budget ({money(workspace_budget)}) covers every {{}} together"
        if workspace_budget is not None
        else ""
    )
    if filters.projects:
        missing = [p for p in filters.projects if p not in project_budgets]
        if missing:
            note = f"No budget for project {', '.join(missing)}{workspace.format('project')}"
            return BudgetChoice(None, "project", (), note)
        amount = sum((project_budgets[p] for p in filters.projects), Decimal(0))
        scope = "project" if len(filters.projects) == 1 else "projects"
        return BudgetChoice(amount, scope, NOT_BUDGETED, covers)
    if filters.cost_centers:
        missing = [c for c in filters.cost_centers if centers.get(c, ("", None))[1] is None]
        if missing:
            names = ", ".join(
                "Unassigned" if c == UNASSIGNED else centers.get(c, (c, None))[0] for c in missing
            )
            note = f"No budget for cost center {names}{workspace.format('cost center')}"
            return BudgetChoice(None, "cost center", (), note)
        amount = sum((centers[c][1] or Decimal(0) for c in filters.cost_centers), Decimal(0))
        scope = "cost center" if len(filters.cost_centers) == 1 else "cost centers"
        return BudgetChoice(amount, scope, NOT_BUDGETED_BY_COST_CENTER, covers)
    if workspace_budget is None:
        return BudgetChoice(None, "workspace", (), "No budget set (Settings → Projects & budgets)")
    if others:
        covers = f"the whole workspace: {covers}"
    return BudgetChoice(workspace_budget, "workspace", NOT_BUDGETED, covers)


def month_to_date(client: Client, m: Marts, scope: Scope, choice: BudgetChoice, filtered: Decimal) -> Decimal:
    """This month's spend the chosen budget covers: `filtered` (the view's own month to date) when the rail
    filters nothing the budget ignores, else one more query without those filters."""
    if choice.amount is None or not choice.note:
        return filtered
    month = spend.calendar_periods(scope.now)["this_month"]
    return spend.period_totals(client, m, scope, {"this_month": month}, skip=choice.skip)[
        "this_month"
    ].spend_usd


def projects_month_to_date(
    client: Client, m: Marts, workspace_id: UUID, slugs: Sequence[str], now: datetime
) -> tuple[dict[str, Decimal], datetime | None]:
    """This month's spend of each project (0 for one without rows), from the same mart and month the budget
    card reads, and the newest ingestion those marts hold for the workspace this month: the figures count
    every row ingested up to then (None: no row this month yet, so nothing of any meter's is counted)."""
    month = spend.calendar_periods(now)["this_month"]
    params = {"ws": workspace_id, "first": month.first_day, "last": month.last_day, "slugs": tuple(slugs)}
    rows = client.query(
        f"SELECT project, sumIf(spend_usd, project IN %(slugs)s), max(last_ingested_at) FROM {m.marts}.daily_spend"
        " WHERE workspace_id = %(ws)s AND day BETWEEN %(first)s AND %(last)s GROUP BY project",
        parameters=params,
    ).result_rows
    totals = {slug: Decimal(0) for slug in slugs}
    as_of: datetime | None = None
    for project, total, ingested in rows:
        if project in totals:
            totals[project] = Decimal(total or 0)
        if ingested is not None:
            ingested = ingested if ingested.tzinfo else ingested.replace(tzinfo=UTC)
            as_of = ingested if as_of is None else max(as_of, ingested)
    return totals, as_of


def earlier_months(client: Client, m: Marts, scope: Scope, choice: BudgetChoice) -> list[EarlierMonth]:
    """The spend the chosen budget covers on each day of the months before this one that its forecast follows
    (as the alerts read them for the same budget)."""
    if choice.amount is None:
        return []
    where, params = scope.condition(time_column=None, skip=choice.skip)
    this_month = scope.now.date().replace(day=1)
    params.update(history_from=history_start(this_month), history_to=this_month)
    rows = client.query(
        f"SELECT day, sum(spend_usd) FROM {m.marts}.daily_spend WHERE {where}"
        " AND day >= %(history_from)s AND day < %(history_to)s GROUP BY day",
        parameters=params,
    ).result_rows
    return months_of_days(rows)


def budget_status(
    budget: Decimal | None,
    month_to_date: Decimal,
    today: date,
    *,
    scope: str,
    note: str | None = None,
    earlier: list[EarlierMonth],
) -> BudgetStatus | None:
    if budget is None:
        return None
    heading = forecast(
        period=today.replace(day=1),
        budget_usd=budget,
        spend_usd=month_to_date,
        days_elapsed=today.day,
        days_in_period=calendar.monthrange(today.year, today.month)[1],
        earlier=earlier,
    )
    projected = heading.projected_usd.quantize(Decimal("0.01"))
    variance = month_to_date - budget
    status = "over" if month_to_date > budget else "at_risk" if projected > budget else "under"
    return BudgetStatus(
        scope=scope,  # type: ignore[arg-type]
        monthly_budget_usd=budget,
        month_to_date_usd=month_to_date,
        variance_usd=variance,
        variance_pct=(variance / budget * 100).quantize(TENTH) if budget else None,
        projected_usd=projected,
        projection_basis=heading.basis,
        status=status,  # type: ignore[arg-type]
        covers=note,
    )
