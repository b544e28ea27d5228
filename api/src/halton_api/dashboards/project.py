"""One project: its spend over time, by developer and model, request volume against cost, and its requests."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from halton_api.dashboards import budgets, priced_requests, spend
from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.page_models import (
    ProjectInfo,
    ProjectsPublic,
    ProjectViewPublic,
    Ranked,
    RequestTable,
)
from halton_api.dashboards.view import View
from halton_api.errors import Invalid, NotFound


def project_view(view: View, slug: str) -> View:
    """The view narrowed to one project (the rail's other filters stay)."""
    filters = replace(view.filters, projects=(slug,))
    return replace(view, filters=filters, scope=replace(view.scope, filters=filters))


async def build_project(
    view: View, slug: str, *, grain: str = "day", cursor: str | None = None, search: str | None = None
) -> ProjectViewPublic:
    if grain not in spend.GRAINS:
        raise Invalid(f"grain: {grain!r} is not one of {', '.join(spend.GRAINS)}")
    facts = view.facts
    registered = facts.project(slug)
    narrowed = project_view(view, slug)
    scope = narrowed.scope
    previous = scope.period.previous()
    chosen = facts.budget_for(narrowed.filters)

    def query(client, m):
        if registered is None and not spend.has_project(client, m, scope.workspace_id, slug):
            return None
        periods = {"this_month": spend.calendar_periods(scope.now)["this_month"], "current": scope.period,
                   "previous": previous}  # fmt: skip
        figures = spend.period_totals(client, m, scope, periods)
        budgeted = budgets.month_to_date(client, m, scope, chosen, figures["this_month"].spend_usd)
        earlier = budgets.earlier_months(client, m, scope, chosen)
        over_time = spend.series(client, m, scope, by="provider", grain=grain)
        breakdowns = spend.rankings(
            client, m, scope, {"developers": ("device_id",), "models": ("provider", "model")}
        )
        table = priced_requests.recent(
            client, m, scope, device_name=facts.device_name, cursor=cursor, search=search
        )
        return figures, budgeted, earlier, over_time, breakdowns, table

    found = await view.reader.run(query)
    if found is None:
        raise NotFound(f"no project {slug!r} in this workspace")
    figures, budgeted, earlier, over_time, breakdowns, table = found
    current, before = figures["current"], figures["previous"]
    budget_amount = facts.monthly_budget(slug)
    return ProjectViewPublic(
        workspace=view.slug,
        project=ProjectInfo(
            slug=slug,
            name=registered.name if registered else slug,
            project_id=registered.id if registered else None,
            cost_center=registered.cost_center_name if registered else None,
            hourly_rate_usd=registered.hourly_rate if registered else None,
            archived=registered.archived if registered else False,
            monthly_budget_usd=budget_amount,
        ),
        filters=narrowed.filters.as_json(),
        period=spend.period_public(scope.period, grain),
        totals=current,
        change=spend.change(current.spend_usd, before.spend_usd),
        budget=budgets.budget_status(
            chosen.amount, budgeted, scope.now.date(), scope=chosen.scope, note=chosen.note, earlier=earlier
        ),
        budget_note=None if chosen.amount is not None else chosen.note,
        spend_over_time=spend.time_series(
            over_time.starts,
            spend.by_provider_label(over_time),
        ),
        by_developer=spend.ranked(
            breakdowns["developers"],
            current.spend_usd,
            keys=1,
            label=facts.device_name,
            detail=lambda device: facts.device_member(device) or "",
            href=lambda device: view.href(f"projects/{slug}", devices=(device,)),
        ),
        by_model=spend.ranked(
            breakdowns["models"],
            current.spend_usd,
            keys=2,
            label=lambda provider, model: model,
            detail=lambda provider, model: PROVIDERS.get(provider, provider),
            href=lambda provider, model: view.href(f"projects/{slug}", models=(model,)),
        ),
        volume=spend.time_series(over_time.starts, {"Spend": over_time.total}, requests=over_time.requests),
        recent_requests=table,
    )


async def project_requests(
    view: View, slug: str, *, cursor: str | None = None, search: str | None = None
) -> RequestTable:
    """The project page's requests table alone (its CSV): no figures, series or breakdowns to compute."""
    facts = view.facts
    registered = facts.project(slug)
    scope = project_view(view, slug).scope

    def query(client, m):
        if registered is None and not spend.has_project(client, m, scope.workspace_id, slug):
            return None
        return priced_requests.recent(
            client, m, scope, device_name=facts.device_name, cursor=cursor, search=search
        )

    table = await view.reader.run(query)
    if table is None:
        raise NotFound(f"no project {slug!r} in this workspace")
    return table


async def build_projects(view: View) -> ProjectsPublic:
    """Every project with spend in the period (and registered ones without), most spend first."""
    scope = view.scope

    def query(client, m):
        return spend.totals(client, m, scope), spend.ranking(client, m, scope, by=("project",))

    current, rows = await view.reader.run(query)
    facts = view.facts
    items = spend.ranked(
        rows,
        current.spend_usd,
        keys=1,
        label=facts.project_name,
        detail=lambda slug: (facts.project(slug).cost_center_name or "") if facts.project(slug) else "",
        href=lambda slug: view.href(f"projects/{slug}"),
    )
    seen = {item.key for item in items}
    for project in facts.projects:
        if project.slug not in seen and not project.archived and not view.filters.narrowed:
            items.append(
                Ranked(key=project.slug, label=project.name, spend_usd=Decimal(0), requests=0, share_pct=Decimal(0),
                       detail=project.cost_center_name or "", href=view.href(f"projects/{project.slug}"))
            )  # fmt: skip
    return ProjectsPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        totals=current,
        projects=items,
    )
