"""The two PDF reports of a workspace: a project's period report and the executive summary.

Each report is the page's own object (`build_project` + `build_clusters`, `build_executive`) rendered through a
report template with the app's Jinja environment (the same money formats and SVG chart functions as the pages),
then laid out by WeasyPrint and signed with the workspace's key. Building from the page's assemblers is what
keeps a PDF and the page it came from from ever disagreeing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment
from psycopg_pool import AsyncConnectionPool

from halton_api.dashboards.clusters import build_clusters
from halton_api.dashboards.executive import build_executive
from halton_api.dashboards.filters import PROVIDERS, Period, Scope, month_end, previous_month
from halton_api.dashboards.page_models import TimeSeries
from halton_api.dashboards.project import build_project, project_view
from halton_api.dashboards.reader import Marts
from halton_api.dashboards.view import View
from halton_api.pdf.jobs import ReportJob
from halton_api.pdf.logo import data_uri
from halton_api.pdf.render import render_pdf
from halton_api.pdf.signing import SignedReport, sign_report
from halton_api.store.audit import Actor
from halton_api.store.branding import StoredLogo

log = logging.getLogger(__name__)

METHODOLOGY_PATH = "/docs/concepts/pricing"
TOP_CLUSTERS = 10
# Spend over time at a grain that gives a chart (and its table) a readable number of columns: a month by day,
# a quarter by week, a year by month.
DAILY_UP_TO_DAYS = 45
WEEKLY_UP_TO_DAYS = 190


@dataclass(frozen=True)
class Report:
    """A report ready to render: its HTML, what its signature says it is, and the name it downloads as."""

    html: str
    signed: SignedReport
    filename: str


@dataclass(frozen=True)
class PricingBasis:
    """How the period's costs were arrived at: the price cards used and where each request's cost came from."""

    price_cards: list[tuple[str, int]]
    logged: int
    repriced: int
    unpriced: int
    # Sum over requests with both a logged and a re-priced cost of (logged - re-priced).
    repricing_delta_usd: Decimal

    @property
    def requests(self) -> int:
        return self.logged + self.repriced + self.unpriced


def pricing_basis(client: Any, m: Marts, scope: Scope) -> PricingBasis:
    """Read from `marts.requests` under the whole rail, like the clusters (so it covers the same requests)."""
    where, params = scope.condition(time_column="started_at" if scope.period.hourly else "day")
    rows = client.query(
        "SELECT ifNull(price_card, ''), cost_source, count(), sum(ifNull(repricing_delta_usd, 0))"
        f" FROM {m.marts}.requests WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
        parameters=params,
    ).result_rows
    cards: dict[str, int] = {}
    sources = {"logged": 0, "repriced": 0, "unpriced": 0}
    delta = Decimal(0)
    for card, source, requests, card_delta in rows:
        if card:
            cards[card] = cards.get(card, 0) + int(requests)
        sources[source] = sources.get(source, 0) + int(requests)
        delta += card_delta
    return PricingBasis(
        price_cards=sorted(cards.items(), key=lambda item: (-item[1], item[0])),
        logged=sources["logged"],
        repriced=sources["repriced"],
        unpriced=sources["unpriced"],
        repricing_delta_usd=delta,
    )


@dataclass(frozen=True)
class BucketRow:
    """One line of the "spend by day/week/month" table: the chart's bucket, in numbers."""

    label: str
    requests: int
    spend: list[Decimal]  # per series of the spend-over-time chart, in its order
    total: Decimal


_ROW_LABEL = {"hour": "%d %b %Y %H:%M", "day": "%a %d %b %Y", "week": "w/c %d %b %Y", "month": "%B %Y"}


def bucket_rows(
    spend: TimeSeries, volume: TimeSeries, granularity: str, *, first_day: date | None = None,
    last_day: date | None = None,
) -> list[BucketRow]:  # fmt: skip
    """The spend-over-time chart's data as table rows (same object, so the table and the chart agree). A week
    or month the period only partly covers says which days it holds (a 12-month report starts mid-month)."""
    fmt = _ROW_LABEL.get(granularity, "%d %b %Y")
    requests = volume.requests or [0] * len(spend.buckets)
    rows = []
    for i, bucket in enumerate(spend.buckets):
        values = [s.values[i] for s in spend.series]
        start = datetime.fromisoformat(bucket).date()
        label = start.strftime(fmt)
        if granularity in ("week", "month"):
            covers_to = (
                start + timedelta(days=6) if granularity == "week" else month_end(start) - timedelta(days=1)
            )
            if first_day and start < first_day:
                label += f" (from {first_day:%d %b})"
            elif last_day and covers_to > last_day:
                label += f" (to {last_day:%d %b})"
        rows.append(
            BucketRow(
                label=label,
                requests=requests[i],
                spend=values,
                total=sum(values, Decimal(0)),
            )
        )
    return rows


def report_grain(period: Period) -> str:
    if period.days <= DAILY_UP_TO_DAYS:
        return "day"
    return "week" if period.days <= WEEKLY_UP_TO_DAYS else "month"


def _filter_facts(view: View, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The rail's narrowing, as the cover lists it (names, not ids)."""
    f, facts = view.filters, view.facts
    out = []
    if f.providers and "provider" not in skip:
        out.append(("Providers", ", ".join(PROVIDERS.get(p, p) for p in f.providers)))
    if f.models and "model" not in skip:
        out.append(("Models", ", ".join(f.models)))
    if f.projects and "project" not in skip:
        out.append(("Projects", ", ".join(facts.project_name(p) for p in f.projects)))
    if f.devices and "device" not in skip:
        out.append(("Developers", ", ".join(facts.device_name(d) for d in f.devices)))
    if f.cost_centers and "cost_center" not in skip:
        out.append(("Cost centers", ", ".join(facts.cost_center_name(c) for c in f.cost_centers)))
    return out


def project_filename(view: View, slug: str) -> str:
    period = view.scope.period
    return f"{view.slug}-{slug}-{period.first_day}_{period.last_day}.pdf"


def executive_filename(view: View) -> str:
    return f"{view.slug}-executive-summary-{view.scope.now:%Y-%m-%d}.pdf"


def _audited_filters(view: View, **extra: Any) -> dict[str, Any]:
    kept = {key: value for key, value in view.filters.as_json().items() if value}
    return {**kept, **extra}


def _common(view: View, logo: StoredLogo | None, title: str) -> dict[str, Any]:
    settings = view.settings
    return {
        "title": title,
        "workspace": view.ctx.workspace,
        "logo_uri": data_uri(logo.content_type, logo.data) if logo else None,
        "generated_at": datetime.now(UTC),
        "methodology_url": f"{settings.public_url}{METHODOLOGY_PATH}",
        "period": view.scope.period,
        # "This month", "Last 30 days"…; a custom range's label is its dates, which the cover shows anyway.
        "range_label": view.scope.period.label if view.filters.range != "custom" else None,
    }


async def project_report(
    env: Environment, view: View, slug: str, *, logo: StoredLogo | None, grain: str | None = None
) -> Report:
    """The project's period report (the rail's period and other filters, narrowed to the project)."""
    scope = view.scope
    grain = grain or report_grain(scope.period)
    data = await build_project(view, slug, grain=grain)
    narrowed = project_view(view, slug)
    clusters = await build_clusters(narrowed)
    basis = await view.reader.run(lambda client, m: pricing_basis(client, m, narrowed.scope))
    period = scope.period
    title = f"{data.project.name}: project report, {period.describe()}"
    html = env.get_template("reports/project.html").render(
        **_common(view, logo, title),
        data=data,
        clusters=clusters.clusters[:TOP_CLUSTERS],
        clusters_total=len(clusters.clusters),
        basis=basis,
        time_rows=bucket_rows(
            data.spend_over_time,
            data.volume,
            data.period.granularity,
            first_day=view.scope.period.first_day,
            last_day=view.scope.period.last_day,
        ),
        filter_facts=_filter_facts(view, skip=("project",)),
    )
    return Report(
        html=html,
        signed=SignedReport(
            kind="project",
            title=f"Project report: {data.project.name}",
            period_start=period.first_day,
            period_end=period.last_day,
            filters=_audited_filters(view, project=[slug]),
        ),
        filename=project_filename(view, slug),
    )


async def executive_report(env: Environment, view: View, *, logo: StoredLogo | None) -> Report:
    """The executive summary: the executive page's figures, for a board pack."""
    data = await build_executive(view)
    period = view.scope.period
    html = env.get_template("reports/executive.html").render(
        **_common(view, logo, f"Executive summary, {view.scope.now:%d %B %Y}"),
        data=data,
        now=view.scope.now,
        last_month=previous_month(view.scope.now.date()),
        filter_facts=_filter_facts(view),
        month_rows=bucket_rows(data.monthly, data.monthly, "month", last_day=view.scope.now.date()),
        providers=PROVIDERS,
    )
    return Report(
        html=html,
        signed=SignedReport(
            kind="executive",
            title="Executive summary",
            period_start=period.first_day,
            period_end=period.last_day,
            filters=_audited_filters(view),
        ),
        filename=executive_filename(view),
    )


async def render_and_sign(
    build: Callable[[], Any],
    *,
    view: View,
    pool: AsyncConnectionPool,
    actor: Actor,
    job: ReportJob | None = None,
) -> bytes:
    """Build the report (`build()` returns a `Report`), lay it out and sign it; `job`, if any, follows along.

    Signing takes a connection of its own from the pool: a job outlives the request that started it.
    """
    if job is not None:
        job.stage = "collecting figures"
    report: Report = await build()
    pdf = await render_pdf(report.html, on_progress=job.on_render_progress if job else None)
    if job is not None:
        job.stage = "signing"
    settings = view.settings
    async with pool.connection() as conn:
        return await sign_report(
            conn,
            workspace=view.ctx.workspace,
            secret=settings.secret(),
            pdf_bytes=pdf,
            report=report.signed,
            actor=actor,
            location=urlsplit(settings.public_url).hostname or settings.public_url,
        )


def job_public(job: ReportJob, *, workspace_slug: str) -> Mapping[str, Any]:
    """What the progress page polls."""
    return {
        "id": job.id,
        "state": job.state,
        "stage": job.stage,
        "render_step": job.render_step,
        "render_steps": job.render_steps,
        "pages": job.pages_laid_out,
        "filename": job.filename,
        "error": job.error,
        "download_url": f"/{workspace_slug}/reports/{job.id}.pdf" if job.state == "done" else None,
    }
