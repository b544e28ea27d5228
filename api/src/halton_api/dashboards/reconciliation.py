"""Reconciliation: what the meters logged against what the providers billed, per month (all providers, then
each one), the days and requests behind a divergence, which billing sources feed it, and pasted statements.

The marts (`reconciliation`, `reconciliation_daily`, `reconciliation_requests`) colour each provider's
month and day; the all-providers row of a month is summed here, so its colour comes from `variance_status`,
the same rule as the dbt macro of that name (a test checks that the two agree).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api import connection_status
from halton_api.dashboards import spend
from halton_api.dashboards.filters import PROVIDERS, Scope, month_end, month_start
from halton_api.dashboards.page_models import (
    DivergentRequest,
    ProviderConnectionPublic,
    ReconciliationDay,
    ReconciliationPeriodPublic,
    ReconciliationProjectRow,
    ReconciliationPublic,
    ReconciliationRow,
    StatementCreate,
    UnmappedBillingRow,
)
from halton_api.dashboards.reader import Marts
from halton_api.dashboards.view import View
from halton_api.errors import Invalid
from halton_api.store import Connection, billing_inputs, provider_connections

SAGE_BELOW = Decimal("0.5")  # percent: |variance| under this is sage
AMBER_UP_TO = Decimal("2")  # percent: up to this (inclusive) amber, above it red
THRESHOLDS = {
    "sage": "under 0.5%",
    "amber": "0.5% to 2%",
    "red": "above 2%",
    "unbilled": "no bill to compare with yet",
    "partial": "some logged spend has no bill yet: the variance covers the billed providers only",
}
PAGE_SIZE = 100
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_STATEMENT_USD = Decimal(10) ** 9  # numeric(18, 9)
NANO = Decimal("1e-9")
ZERO = Decimal(0)
# Billing is per provider and month: these rail filters cannot split it.
NOT_BILLED_BY = {"models": "model", "projects": "project", "devices": "device", "cost_centers": "cost center"}


# --- the colour rule (mirrors dbt/macros/money.sql) ---------------------------------------------------


def variance_pct(variance_usd: Decimal | None, billed_usd: Decimal | None) -> Decimal | None:
    """`percent_of(variance, billed)`: times 100, cut to 12 decimals, rounded half away from zero to 4; None
    when nothing (or zero) was billed."""
    if variance_usd is None or not billed_usd:
        return None
    exact = (variance_usd * 100 / billed_usd).quantize(Decimal("1e-12"), rounding=ROUND_DOWN)
    return exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def variance_status(variance_usd: Decimal | None, billed_usd: Decimal | None, pct: Decimal | None) -> str:
    """`variance_status(variance, billed, pct)`: unbilled without a bill, sage under 0.5%, amber from 0.5%
    to 2% inclusive, red above; a zero bill is sage only when nothing was logged either."""
    if billed_usd is None:
        return "unbilled"
    if variance_usd == 0:
        return "sage"
    if billed_usd == 0 or pct is None:
        return "red"
    if abs(pct) < SAGE_BELOW:
        return "sage"
    if abs(pct) <= AMBER_UP_TO:
        return "amber"
    return "red"


def month_covers(period: date, today: date) -> str:
    """The days a month's reconciliation covers: the whole month, or the month to date."""
    last = month_end(period) - timedelta(days=1)
    if period <= today < last:
        return f"{spend.day_period(period, today, '').describe()} (month to date)"
    return f"{spend.day_period(period, last, '').describe()} (whole month)"


def coverage_pct(compared: Decimal, logged: Decimal) -> Decimal | None:
    """The share of logged spend that has a bill, cut (never rounded up) to a tenth of a percent."""
    if not logged:
        return None
    return min(compared / logged * 100, Decimal(100)).quantize(Decimal("0.1"), rounding=ROUND_DOWN)


def coverage_words(billed: int, providers: int, pct: Decimal | None) -> str:
    """'billed data for 3 of 4 providers, 82% of logged spend' (the percent cut, so never 100% unless whole)."""
    text = f"billed data for {billed} of {providers} provider{'s' if providers != 1 else ''}"
    if pct is None:
        return text
    return f"{text}, {pct.quantize(Decimal(1), rounding=ROUND_DOWN)}% of logged spend"


def provider_row(row: dict[str, Any], today: date) -> ReconciliationRow:
    """One provider's month from the mart (which compares a bill with the logged spend it covers), with what
    the figures cover."""
    provider, billed = row["provider"], row["billed_usd"] is not None
    pct = coverage_pct(row["compared_logged_usd"] or ZERO, row["logged_usd"])
    return ReconciliationRow(
        **row,
        provider_label=PROVIDERS.get(provider, provider),
        covers=month_covers(row["period"], today),
        providers=[provider],
        billed_providers=[provider] if billed else [],
        unbilled_providers=[provider] if row["unbilled_logged_usd"] else [],
        coverage_pct=pct,
        coverage=coverage_words(int(billed), 1, pct),
    )


def _compared(row: ReconciliationRow) -> Decimal:
    """What a provider's bill is compared with (nothing without a bill)."""
    if row.billed_usd is None:
        return ZERO
    return row.logged_usd if row.compared_logged_usd is None else row.compared_logged_usd


def all_providers(rows: list[ReconciliationRow]) -> ReconciliationRow:
    """The reconciliation contract for one month's providers summed, shared by every page and report:
    everything logged; the variance only between the providers that have a bill and what they logged; the
    coverage (how many providers, what share of logged spend has a bill); and a status that is a colour only
    when every logged dollar has a bill ("partial" otherwise, "unbilled" when none has one)."""
    first = rows[0]
    billed_rows = [r for r in rows if r.billed_usd is not None]
    logged = sum((r.logged_usd for r in rows), ZERO)
    billed = compared = variance = pct = None
    if billed_rows:
        billed = sum((r.billed_usd for r in billed_rows), ZERO)  # type: ignore[misc]
        compared = sum((_compared(r) for r in billed_rows), ZERO)
        variance = compared - billed
        pct = variance_pct(variance, billed)
    billed_status = variance_status(variance, billed, pct)
    unbilled = [r.provider for r in rows if r.provider and (r.logged_usd != _compared(r))]
    covered = coverage_pct(compared or ZERO, logged)
    sources = {r.billed_source for r in billed_rows}
    return ReconciliationRow(
        period=first.period,
        period_label=first.period_label,
        provider=None,
        provider_label="All providers",
        requests=sum(r.requests for r in rows),
        logged_usd=logged,
        billed_usd=billed,
        billed_source=sources.pop() if len(sources) == 1 else "mixed" if sources else "none",
        variance_usd=variance,
        variance_pct=pct,
        status="partial" if billed_rows and unbilled else billed_status,
        divergent_days=sum(r.divergent_days for r in rows),
        compared_logged_usd=compared,
        unbilled_providers=unbilled,
        unbilled_logged_usd=logged - (compared or ZERO),
        covers=first.covers,
        providers=[r.provider for r in rows if r.provider],
        billed_providers=[r.provider for r in billed_rows if r.provider],
        coverage_pct=covered,
        coverage=coverage_words(len(billed_rows), len(rows), covered),
        billed_status=billed_status,
    )


# --- input ------------------------------------------------------------------------------------------


def parse_month(text: str, *, field: str = "month", today: date | None = None) -> date:
    """`YYYY-MM` as the month's first day; `Invalid` naming `field` otherwise (or for a month to come)."""
    found = MONTH.match(text.strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise Invalid(f"{field}: {text!r} is not a month; write it as YYYY-MM, e.g. 2026-04")
    month = date(int(found.group(1)), int(found.group(2)), 1)
    if today is not None and month > month_start(today):
        raise Invalid(
            f"{field}: {text.strip()} has not started yet; a statement is for a past or current month"
        )
    return month


def statement_input(provider: str, month: str, amount: str, note: str, *, today: date) -> StatementCreate:
    """A pasted statement from the form's text, each mistake reported with the field's name."""
    provider = provider.strip().lower()
    if provider not in PROVIDERS:
        raise Invalid(f"provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    period = parse_month(month, today=today)
    text = amount.strip().lstrip("$").replace(",", "").strip()
    if not text:
        raise Invalid("amount: enter the statement's total in USD, e.g. 342.04")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"amount: {amount.strip()!r} is not an amount; write it like 342.04") from None
    if not value.is_finite():
        raise Invalid(f"amount: {amount.strip()!r} is not an amount; write it like 342.04")
    if value < 0:
        raise Invalid("amount: a statement total cannot be negative (enter credits as a lower total)")
    if value >= MAX_STATEMENT_USD or value != value.quantize(NANO):
        raise Invalid("amount: at most 9 decimals and under $1,000,000,000")
    return StatementCreate(provider=provider, period=period, amount_usd=value, note=note.strip())


# --- queries (run in a worker thread through MartsReader.run) ------------------------------------------


def months_of(scope: Scope) -> list[date]:
    """First days of the months the rail's period overlaps, newest first."""
    months, month = [], month_start(scope.period.first_day)
    while month <= scope.period.last_day:
        months.append(month)
        month = month_end(month)
    return months[::-1]


def _providers(scope: Scope) -> tuple[str, dict[str, Any]]:
    if scope.filters.providers:
        return " AND provider IN %(providers)s", {"providers": tuple(scope.filters.providers)}
    return "", {}


def provider_rows(client: Client, m: Marts, scope: Scope, months: list[date]) -> list[ReconciliationRow]:
    """The mart's rows for `months` (the rail's providers), newest month first."""
    only, params = _providers(scope)
    rows = client.query(
        "SELECT period, period_label, provider, requests, logged_usd, billed_usd, billed_source, variance_usd,"
        " variance_pct, status, billed_status, divergent_days, compared_logged_usd, unbilled_logged_usd"
        f" FROM {m.marts}.reconciliation"
        f" WHERE workspace_id = %(ws)s AND period IN %(months)s{only} ORDER BY period DESC, provider",
        parameters={"ws": scope.workspace_id, "months": tuple(months), **params},
    ).named_results()
    today = scope.now.date()
    return [provider_row(r, today) for r in rows]


def project_rows(
    client: Client, m: Marts, scope: Scope, months: list[date]
) -> tuple[list[dict[str, Any]], list[UnmappedBillingRow]] | None:
    """The per-project mart's rows for `months` (the rail's providers and projects; unmapped lines belong to
    no project, so they show whatever the project filter), newest month first; None before the marts have
    built it."""
    exists = client.query(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'reconciliation_projects'",
        parameters={"db": m.marts},
    ).result_rows[0][0]
    if not exists:
        return None
    only, params = _providers(scope)
    if scope.filters.projects:
        only += " AND (project IS NULL OR project IN %(projects)s)"
        params["projects"] = tuple(scope.filters.projects)
    rows = client.query(
        "SELECT period, period_label, project, project_name, provider, mapped, provider_projects, requests,"
        " logged_usd, billed_usd, compared_logged_usd, unbilled_logged_usd, variance_usd, variance_pct, status,"
        f" billed_status FROM {m.marts}.reconciliation_projects"
        f" WHERE workspace_id = %(ws)s AND period IN %(months)s{only}"
        " ORDER BY period DESC, project_name, provider",
        parameters={"ws": scope.workspace_id, "months": tuple(months), **params},
    ).named_results()
    mapped, unmapped = [], []
    for row in rows:
        if row["project"] is None:
            unmapped.append(
                UnmappedBillingRow(
                    period=row["period"], period_label=row["period_label"], provider=row["provider"],
                    provider_label=PROVIDERS.get(row["provider"], row["provider"]),
                    provider_projects=list(row["provider_projects"]), billed_usd=row["billed_usd"],
                )
            )  # fmt: skip
        else:
            mapped.append(row)
    return mapped, unmapped


def by_project(
    rows: list[dict[str, Any]], today: date, chosen: tuple[str, ...]
) -> list[ReconciliationProjectRow]:
    """Per month and project, the all-providers row (the same contract as the whole workspace's: coverage,
    and a colour only where every logged dollar has a bill) and then its provider rows. Without a chosen
    project, only projects with a provider mapped to them: the others have no bill to read."""
    groups: dict[tuple[date, str], list[ReconciliationProjectRow]] = {}
    for row in rows:
        base = provider_row(
            {**row, "billed_source": "billing_api" if row["billed_usd"] is not None else "none"}, today
        )
        groups.setdefault((row["period"], row["project"]), []).append(
            ReconciliationProjectRow(
                **base.model_dump(), project=row["project"], project_name=row["project_name"],
                mapped=bool(row["mapped"]), provider_projects=list(row["provider_projects"]),
            )
        )  # fmt: skip
    out: list[ReconciliationProjectRow] = []
    for (_, project), group in groups.items():
        if not chosen and not any(r.mapped for r in group):
            continue
        total = all_providers(list(group))
        out.append(
            ReconciliationProjectRow(
                **total.model_dump(), project=project, project_name=group[0].project_name,
                mapped=any(r.mapped for r in group),
            )
        )  # fmt: skip
        out.extend(group)
    return out


def last_billed_days(client: Client, m: Marts, workspace_id: UUID) -> dict[str, date]:
    rows = client.query(
        f"SELECT provider, max(day) FROM {m.marts}.reconciliation_daily"
        " WHERE workspace_id = %(ws)s AND billing_lines > 0 GROUP BY provider",
        parameters={"ws": workspace_id},
    ).result_rows
    return {str(provider): day for provider, day in rows}


def period_days(client: Client, m: Marts, scope: Scope, period: date) -> list[ReconciliationDay]:
    only, params = _providers(scope)
    rows = client.query(
        "SELECT day, provider, requests, logged_usd, billed_usd, variance_usd, variance_pct, status,"
        f" repricing_delta_usd, unpriced_requests FROM {m.marts}.reconciliation_daily"
        f" WHERE workspace_id = %(ws)s AND period = %(period)s{only} ORDER BY day, provider",
        parameters={"ws": scope.workspace_id, "period": period, **params},
    ).named_results()
    return [ReconciliationDay(**r) for r in rows]


def _request_filter(scope: Scope, period: date, search: str | None) -> tuple[str, dict[str, Any]]:
    only, params = _providers(scope)
    where = f"workspace_id = %(ws)s AND day >= %(first)s AND day < %(after)s{only}"
    params.update(ws=scope.workspace_id, first=period, after=month_end(period))
    if search:
        try:
            params["uid"] = UUID(search)
            where += " AND request_uid = %(uid)s"
        except ValueError:
            params["q"] = search
            where += " AND positionCaseInsensitive(ifNull(provider_request_id, ''), %(q)s) > 0"
    return where, params


def divergent_requests(
    client: Client, m: Marts, scope: Scope, period: date, *, search: str | None, offset: int
) -> tuple[list[DivergentRequest], int]:
    """The calls on the month's amber and red days, those priced with a since-changed card first, then the
    largest re-pricing difference; one page from `offset`, and how many there are."""
    where, params = _request_filter(scope, period, search)
    total = client.query(
        f"SELECT count() FROM {m.marts}.reconciliation_requests WHERE {where}", parameters=params
    ).result_rows[0][0]
    rows = client.query(
        "SELECT request_uid, day, provider, started_at, model, project, provider_request_id, price_card,"
        " input_tokens, output_tokens, logged_cost_usd, repriced_cost_usd, repricing_delta_usd,"
        f" repricing_differs, day_status, card_model, cost_source FROM {m.marts}.reconciliation_requests"
        f" WHERE {where} ORDER BY repricing_differs DESC, abs(ifNull(repricing_delta_usd, 0)) DESC,"
        f" started_at DESC, request_uid LIMIT {PAGE_SIZE} OFFSET {int(offset)}",
        parameters=params,
    ).named_results()
    return [DivergentRequest(**r) for r in rows], int(total)


# --- assemblers ---------------------------------------------------------------------------------------


def ignored_filters(view: View) -> list[str]:
    return [label for name, label in NOT_BILLED_BY.items() if getattr(view.filters, name)]


def _with_totals(view: View, rows: list[ReconciliationRow]) -> list[ReconciliationRow]:
    """Each month's all-providers row followed by its provider rows, each linking to the month."""
    out: list[ReconciliationRow] = []
    by_month: dict[date, list[ReconciliationRow]] = {}
    for row in rows:
        by_month.setdefault(row.period, []).append(row)
    for period, group in by_month.items():
        href = view.href(f"reconciliation/{period:%Y-%m}")
        out.append(all_providers(group).model_copy(update={"href": href}))
        out.extend(r.model_copy(update={"href": href}) for r in group)
    return out


async def build_reconciliation(view: View, conn: Connection) -> ReconciliationPublic:
    scope = view.scope
    months = months_of(scope)

    def query(client, m):
        return (
            provider_rows(client, m, scope, months),
            last_billed_days(client, m, scope.workspace_id),
            project_rows(client, m, scope, months),
        )

    rows, billed_days, per_project = await view.reader.run(query)
    project_figures, unmapped = per_project if per_project is not None else ([], [])
    stored = {
        c["provider"]: c for c in await billing_inputs.list_connections(conn, workspace_id=scope.workspace_id)
    }
    broken = await provider_connections.unreadable(
        conn, workspace_id=scope.workspace_id, secret=view.settings.secret()
    )
    statements = await billing_inputs.list_statements(conn, workspace_id=scope.workspace_id)
    connections = []
    for provider, label in PROVIDERS.items():
        if scope.filters.providers and provider not in scope.filters.providers:
            continue
        key = stored.get(provider)
        live = key is not None and key["revoked_at"] is None
        connections.append(
            ProviderConnectionPublic(
                provider=provider,
                provider_label=label,
                connected=key is not None,
                key_prefix=key["key_prefix"] if key else None,
                created_at=key["created_at"] if key else None,
                revoked_at=key["revoked_at"] if key else None,
                live=key is not None and key["revoked_at"] is None,
                last_billed_day=billed_days.get(provider),
                statements=sum(1 for s in statements if s.provider == provider),
                last_pull_at=key["last_pull_at"] if live else None,
                last_pull_day=key["last_pull_day"] if live else None,
                last_pull_error=key["last_pull_error"] if live else None,
                status=connection_status.describe(key, scope.now, readable=provider not in broken)[1]
                if live
                else None,
                key_unreadable=live and provider in broken,
            )
        )
    return ReconciliationPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        periods=_with_totals(view, rows),
        connections=connections,
        statements=[
            s for s in statements if not scope.filters.providers or s.provider in scope.filters.providers
        ],
        thresholds=THRESHOLDS,
        ignored_filters=ignored_filters(view),
        projects=by_project(project_figures, scope.now.date(), scope.filters.projects),
        unmapped=unmapped,
        projects_built=per_project is not None,
    )


async def build_reconciliation_period(
    view: View, period: date, *, search: str | None, offset: int
) -> ReconciliationPeriodPublic:
    scope = view.scope

    def query(client, m):
        rows = provider_rows(client, m, scope, [period])
        days = period_days(client, m, scope, period)
        requests, total = divergent_requests(client, m, scope, period, search=search, offset=offset)
        return rows, days, requests, total

    rows, days, requests, total = await view.reader.run(query)
    return ReconciliationPeriodPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=period,
        period_label=f"{period:%Y-%m}",
        rows=_with_totals(view, rows) if rows else [],
        days=days,
        requests=requests,
        requests_total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        next_cursor=str(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else None,
        previous_cursor=str(offset - PAGE_SIZE) if offset > PAGE_SIZE else None,
        search=search,
        ignored_filters=ignored_filters(view),
    )


def parse_cursor(text: str | None) -> int:
    """The requests table's cursor (rows to skip, as `next_cursor` gave it)."""
    if not text:
        return 0
    if not text.isdigit() or int(text) % PAGE_SIZE or int(text) > 10_000_000:
        raise Invalid(f"cursor: {text!r} is not a cursor this page gave; start again from the first page")
    return int(text)


def latest_complete_month(today: date) -> date:
    return month_start(month_start(today) - timedelta(days=1))
