"""The overview: headline numbers, the period's spend by provider against the previous period, the top projects
and models, and the sync banner."""

from __future__ import annotations

from decimal import Decimal

from halton_api.dashboards import spend
from halton_api.dashboards.budgets import budget_status
from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.models import OverviewPublic
from halton_api.dashboards.view import View

TOP = 5


async def build_overview(view: View) -> OverviewPublic:
    scope = view.scope
    previous = scope.period.previous()

    def query(client, m):
        figures = spend.calendar_figures(client, m, scope)
        current = spend.totals(client, m, scope)
        before = spend.totals(client, m, scope, period=previous)
        starts, by_provider, _ = spend.series(client, m, scope, by="provider")
        _, baseline, _ = spend.series(client, m, scope, by=None, period=previous)
        projects = spend.ranking(client, m, scope, by=("project",), limit=TOP)
        models = spend.ranking(client, m, scope, by=("provider", "model"), limit=TOP)
        return figures, current, before, starts, by_provider, baseline, projects, models

    figures, current, before, starts, by_provider, baseline, projects, models = await view.reader.run(query)
    facts = view.facts
    only_project = view.filters.projects[0] if len(view.filters.projects) == 1 else None
    project_budget = facts.monthly_budget(only_project) if only_project else None
    budget = budget_status(
        project_budget if project_budget is not None else facts.monthly_budget(),
        figures["this_month"],
        scope.now.date(),
        scope="project" if project_budget is not None else "workspace",
    )
    baseline_values = baseline.get("", [Decimal(0)] * len(starts))[: len(starts)]
    return OverviewPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        today_usd=figures["today"],
        this_month_usd=figures["this_month"],
        last_month_usd=figures["last_month"],
        period_totals=current,
        period_change=spend.change(current.spend_usd, before.spend_usd),
        budget=budget,
        spend_by_provider=spend.time_series(
            starts,
            {PROVIDERS.get(name, name): values for name, values in by_provider.items()},
            baseline=(
                f"Previous period ({previous.first_day:%d %b} \u2013 {previous.last_day:%d %b})",
                baseline_values,
            ),
        ),
        top_projects=spend.ranked(
            projects,
            current.spend_usd,
            keys=1,
            label=facts.project_name,
            href=lambda slug: view.href(f"projects/{slug}"),
        ),
        top_models=spend.ranked(
            models,
            current.spend_usd,
            keys=2,
            label=lambda provider, model: model,
            detail=lambda provider, model: PROVIDERS.get(provider, provider),
            href=lambda provider, model: view.href("overview", models=(model,)),
        ),
        sync=facts.sync_status(view.settings, scope.now),
    )
