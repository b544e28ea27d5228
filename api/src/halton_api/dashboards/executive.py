"""The executive view: the headline numbers a CFO asks for, their change, the top projects, the trust signal
(reconciliation variance of the latest complete month) and a year of monthly spend.

The trust signal is the reconciliation page's all-providers row for the same month and providers (one
`all_providers`), and "month to date" compares with this month's `Period.previous()`, as every page does."""

from __future__ import annotations

from datetime import timedelta

from halton_api.dashboards import budgets, spend
from halton_api.dashboards.filters import month_start
from halton_api.dashboards.page_models import ExecutivePublic
from halton_api.dashboards.reconciliation import (
    all_providers,
    ignored_filters,
    latest_complete_month,
    provider_rows,
)
from halton_api.dashboards.view import View

TOP = 3
MONTHS = 12


async def build_executive(view: View) -> ExecutivePublic:
    scope = view.scope
    today = scope.now.date()
    first_month = month_start(today)
    for _ in range(MONTHS - 1):
        first_month = month_start(first_month - timedelta(days=1))
    year = spend.day_period(first_month, today, f"The {MONTHS} months to {today:%B %Y}")
    reconciled = latest_complete_month(today)
    calendar = spend.calendar_periods(scope.now)

    chosen = view.facts.budget_for(view.filters)

    def query(client, m):
        found = spend.period_totals(client, m, scope, {**calendar, "current": scope.period})
        budgeted = budgets.month_to_date(client, m, scope, chosen, found["this_month"].spend_usd)
        earlier = budgets.earlier_months(client, m, scope, chosen)
        projects = spend.ranking(client, m, scope, by=("project",), limit=TOP)
        monthly = spend.series(client, m, scope, by="provider", grain="month", period=year)
        rows = provider_rows(client, m, scope, [reconciled])
        return found, budgeted, earlier, projects, monthly, rows

    found, budgeted, earlier, projects, monthly, rows = await view.reader.run(query)
    figures = {name: totals.spend_usd for name, totals in found.items()}
    current = found["current"]
    facts = view.facts
    return ExecutivePublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        this_month_usd=figures["this_month"],
        last_month_usd=figures["last_month"],
        year_to_date_usd=figures["year_to_date"],
        month_over_month=spend.change(figures["this_month"], figures["last_month"]),
        same_point_last_month=spend.change(figures["this_month"], figures["last_month_to_same_day"]),
        month_to_date_compared_with=calendar["this_month"].compared_with(),
        period_total_usd=current.spend_usd,
        top_projects=spend.ranked(
            projects,
            current.spend_usd,
            keys=1,
            label=facts.project_name,
            href=lambda slug: view.href(f"projects/{slug}"),
        ),
        reconciliation=(
            all_providers(rows).model_copy(update={"href": view.href(f"reconciliation/{reconciled:%Y-%m}")})
            if rows
            else None
        ),
        reconciliation_ignores=ignored_filters(view),
        budget=budgets.budget_status(
            chosen.amount, budgeted, today, scope=chosen.scope, note=chosen.note, earlier=earlier
        ),
        budget_note=None if chosen.amount is not None else chosen.note,
        monthly=spend.time_series(monthly.starts, spend.by_provider_label(monthly)),
    )
