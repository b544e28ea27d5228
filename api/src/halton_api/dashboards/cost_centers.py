"""Cost centers: projects grouped into business units and rolled up, with the period's spend over time.

The grouping is read from the control plane at request time (not from the marts' copy), so a project moved to
another cost center counts under its new one at once."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from halton_api.dashboards import spend
from halton_api.dashboards.filters import UNASSIGNED
from halton_api.dashboards.page_models import CostCenterRollup, CostCentersPublic
from halton_api.dashboards.view import View

UNASSIGNED_NAME = "Unassigned"


async def build_cost_centers(view: View) -> CostCentersPublic:
    scope = view.scope
    previous = scope.period.previous()

    def query(client, m):
        current = spend.ranking(client, m, scope, by=("project",))
        before = spend.ranking(client, m, scope, by=("project",), period=previous)
        return current, before, spend.series(client, m, scope, by="project")

    current, before, over_time = await view.reader.run(query)
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
