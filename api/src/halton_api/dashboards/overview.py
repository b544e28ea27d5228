"""The overview: headline numbers, the period's spend by provider against the previous period, the top projects
and models, the models whose calls are unpriced, and the sync banner."""

from __future__ import annotations

from halton_api.dashboards import budgets, spend
from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.page_models import OverviewPublic, UnpricedModel
from halton_api.dashboards.view import View
from halton_meter.catalogue import Catalogue

TOP = 5
UNPRICED_SHOWN = 10


def unpriced_model(provider: str, model: str, requests: int, catalogue: Catalogue) -> UnpricedModel:
    """The line the meter's `halton-meter report` prints for the same calls, told for the cloud."""
    known = catalogue.find(provider, model) is not None
    head = f"{requests:,} call{'s' if requests != 1 else ''} of {model} unpriced"
    why = (
        f"catalogue {catalogue.version} has a price: the marts' next build prices the calls whose tokens are known"
        if known
        else f"no price in catalogue {catalogue.version}"
    )
    return UnpricedModel(
        provider=provider,
        model=model,
        requests=requests,
        catalogue_version=catalogue.version,
        in_catalogue=known,
        message=f"{head} ({why})",
    )


async def build_overview(view: View, catalogue: Catalogue) -> OverviewPublic:
    scope = view.scope
    previous = scope.period.previous()

    chosen = view.facts.budget_for(view.filters)

    def query(client, m):
        calendar = spend.calendar_periods(scope.now)
        periods = {name: calendar[name] for name in ("today", "this_month", "last_month")}
        periods.update(current=scope.period, previous=previous)
        figures = spend.period_totals(client, m, scope, periods)
        budgeted = budgets.month_to_date(client, m, scope, chosen, figures["this_month"].spend_usd)
        earlier = budgets.earlier_months(client, m, scope, chosen)
        trend = spend.series(client, m, scope, by="provider", baseline=previous)
        top = spend.rankings(
            client, m, scope, {"projects": ("project",), "models": ("provider", "model_family")}, limit=TOP
        )
        unpriced = spend.unpriced_by_model(client, m, scope, limit=UNPRICED_SHOWN)
        return figures, budgeted, earlier, trend, top, unpriced

    figures, budgeted, earlier, trend, top, unpriced = await view.reader.run(query)
    current, before = figures["current"], figures["previous"]
    facts = view.facts
    budget = budgets.budget_status(
        chosen.amount, budgeted, scope.now.date(), scope=chosen.scope, note=chosen.note, earlier=earlier
    )
    return OverviewPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        today_usd=figures["today"].spend_usd,
        this_month_usd=figures["this_month"].spend_usd,
        last_month_usd=figures["last_month"].spend_usd,
        period_totals=current,
        period_change=spend.change(current.spend_usd, before.spend_usd),
        budget=budget,
        budget_note=None if budget else chosen.note,
        spend_by_provider=spend.time_series(
            trend.starts,
            spend.by_provider_label(trend),
            baseline=(f"Previous period: {scope.period.compared_with()}", trend.baseline),
        ),
        top_projects=spend.ranked(
            top["projects"],
            current.spend_usd,
            keys=1,
            label=facts.project_name,
            href=lambda slug: view.href(f"projects/{slug}"),
        ),
        top_models=spend.ranked(
            top["models"],
            current.spend_usd,
            keys=2,
            label=lambda provider, model: model,
            detail=lambda provider, model: PROVIDERS.get(provider, provider),
            href=lambda provider, model: view.href("overview", models=(model,)),
        ),
        unpriced=[unpriced_model(*row, catalogue) for row in unpriced],
        sync=facts.sync_status(view.settings, scope.now),
    )
