"""Cost centers: projects grouped into business units and rolled up, with the period's spend over time.

The grouping is read from the control plane at request time (not from the marts' copy), so a project moved to
another cost center counts under its new one at once. A cost center with a monthly budget shows it against this
calendar month's spend of its projects, all of it (as budget alerts count it), whatever the rail filters."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from uuid import UUID

from halton_api.dashboards import spend
from halton_api.dashboards.filters import UNASSIGNED
from halton_api.dashboards.page_models import CostCenterRollup, CostCentersPublic
from halton_api.dashboards.view import View

UNASSIGNED_NAME = "Unassigned"
# A budget covers all of its cost center's spend: none of the rail's filters narrow it.
EVERY_FILTER = ("provider", "model", "project", "device", "cost_center")


async def build_cost_centers(view: View) -> CostCentersPublic:
    scope = view.scope
    previous = scope.period.previous()
    budgets = {b.cost_center_id: b.monthly_amount for b in view.facts.budgets if b.cost_center_id}
    this_month = spend.calendar_periods(scope.now)["this_month"]

    def query(client, m):
        current = spend.ranking(client, m, scope, by=("project",))
        before = spend.ranking(client, m, scope, by=("project",), period=previous)
        month = (
            spend.ranking(client, m, scope, by=("project",), period=this_month, skip=EVERY_FILTER)
            if budgets
            else []
        )
        return current, before, spend.series(client, m, scope, by="project"), month

    current, before, over_time, month = await view.reader.run(query)
    starts, by_project = over_time.starts, over_time.by_key
    facts = view.facts
    centre_of: dict[str, str] = {}
    names = {str(c.id): c.name for c in facts.cost_centers}
    for project in facts.projects:
        centre_of[project.slug] = str(project.cost_center_id) if project.cost_center_id else UNASSIGNED

    spend_by: dict[str, Decimal] = defaultdict(Decimal)
    requests_by: dict[str, int] = defaultdict(int)
    previous_by: dict[str, Decimal] = defaultdict(Decimal)
    projects_by: dict[str, set[str]] = defaultdict(set)
    for slug, amount, count, _, _ in current:
        key = centre_of.get(slug, UNASSIGNED)
        spend_by[key] += amount
        requests_by[key] += int(count)
        projects_by[key].add(slug)
    for slug, amount, *_ in before:
        previous_by[centre_of.get(slug, UNASSIGNED)] += amount
    month_by: dict[str, Decimal] = defaultdict(Decimal)
    for slug, amount, *_ in month:
        month_by[centre_of.get(slug, UNASSIGNED)] += amount
    for project in facts.projects:  # centres list their projects even in a quiet period
        if not project.archived:
            projects_by[centre_of[project.slug]].add(project.slug)
    total = sum(spend_by.values(), Decimal(0))
    keys = [str(c.id) for c in facts.cost_centers] + [UNASSIGNED]
    rollups = [
        CostCenterRollup(
            cost_center_id=None if key == UNASSIGNED else key,
            name=names.get(key, UNASSIGNED_NAME),
            projects=sorted(projects_by[key]),
            spend_usd=spend_by[key],
            requests=requests_by[key],
            share_pct=spend.share(spend_by[key], total),
            previous_usd=previous_by[key],
            monthly_budget_usd=budgets.get(UUID(key)) if key != UNASSIGNED else None,
            month_to_date_usd=month_by[key] if key != UNASSIGNED and UUID(key) in budgets else None,
        )
        for key in keys
        if key != UNASSIGNED or spend_by[key] or projects_by[key]
    ]
    rollups.sort(key=lambda r: (-r.spend_usd, r.name))
    over_time: dict[str, list[Decimal]] = {}
    for rollup in rollups:
        key = str(rollup.cost_center_id) if rollup.cost_center_id else UNASSIGNED
        values = [Decimal(0)] * len(starts)
        for slug, series in by_project.items():
            if centre_of.get(slug, UNASSIGNED) == key:
                values = [a + b for a, b in zip(values, series, strict=True)]
        over_time[rollup.name] = values
    return CostCentersPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        cost_centers=rollups,
        over_time=spend.time_series(starts, over_time),
    )
