"""Reconciliation (logged against billed, by month), a month's days and requests, pasted statements; pages
and their JSON twins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.page_models import ReconciliationPeriodPublic, ReconciliationPublic
from halton_api.dashboards.reconciliation import (
    THRESHOLDS,
    build_reconciliation,
    build_reconciliation_period,
    parse_cursor,
    parse_month,
    statement_input,
)
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, ConfigManager, Conn, CsrfProtected, Member, RailFilters, Reader
from halton_api.pages import redirect
from halton_api.store import billing_inputs

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Search = Annotated[
    str | None,
    Query(max_length=200, description="A provider_request_id (or part of one), or a request_uid."),
]
Cursor = Annotated[
    str | None, Query(max_length=20, description="`next_cursor` of the previous page (pages of 100).")
]
MARTS_REFRESH = (
    "the reconciliation picks it up on the marts' next run (they snapshot the control plane every 15 minutes)"
)


@router.get(
    "/reconciliation",
    response_model=ReconciliationPublic,
    summary="Reconciliation: logged against billed per month, with billing sources and pasted statements",
)
async def reconciliation_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> ReconciliationPublic:
    return await build_reconciliation(await open_view(request, ctx, conn, filters, reader), conn)


@router.get(
    "/reconciliation/{period}",
    response_model=ReconciliationPeriodPublic,
    summary="One month's reconciliation: per-day breakdown and the requests on divergent days",
)
async def reconciliation_period_json(
    request: Request,
    period: str,
    ctx: ApiReader,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    q: Search = None,
    cursor: Cursor = None,
) -> ReconciliationPeriodPublic:
    month = parse_month(period, field="period")
    view = await open_view(request, ctx, conn, filters, reader)
    return await build_reconciliation_period(
        view, month, search=(q or "").strip() or None, offset=parse_cursor(cursor)
    )


@pages.get("/reconciliation")
async def reconciliation_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request,
        "dashboards/reconciliation.html",
        view,
        conn,
        lambda: build_reconciliation(view, conn),
        providers=PROVIDERS,
        thresholds=THRESHOLDS,
        this_month=f"{datetime.now(UTC):%Y-%m}",
        # Shown when the marts cannot answer yet (a new workspace): statements live in the control plane.
        pasted=await billing_inputs.list_statements(conn, workspace_id=ctx.workspace.id),
    )


@pages.get("/reconciliation/{period}")
async def reconciliation_period_page(
    request: Request,
    period: str,
    ctx: Member,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    q: Search = None,
    cursor: Cursor = None,
) -> Response:
    month = parse_month(period, field="period")
    offset = parse_cursor(cursor)
    view = await open_view(request, ctx, conn, filters, reader)
    search = (q or "").strip() or None
    return await render_view(
        request,
        "dashboards/reconciliation_period.html",
        view,
        conn,
        lambda: build_reconciliation_period(view, month, search=search, offset=offset),
        month=month,
        providers=PROVIDERS,
        q=search or "",
        thresholds=THRESHOLDS,
    )


@pages.post("/reconciliation/statements", dependencies=[CsrfProtected])
async def paste_statement(
    ctx: ConfigManager,
    conn: Conn,
    provider: Annotated[str, Form(max_length=32)] = "",
    month: Annotated[str, Form(max_length=32)] = "",
    amount: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    statement = statement_input(provider, month, amount, note, today=datetime.now(UTC).date())
    saved, outcome = await billing_inputs.save_statement(
        conn, workspace_id=ctx.workspace.id, statement=statement, actor=ctx.actor
    )
    what = f"{PROVIDERS[saved.provider]} statement for {saved.period:%Y-%m}"
    if outcome == "unchanged":
        notice = f"{what} is already ${saved.amount_usd:,.2f} with that note: nothing changed."
    elif outcome == "corrected":
        was = saved.corrections[0].amount_usd
        notice = f"{what} corrected from ${was:,.2f} to ${saved.amount_usd:,.2f} (the earlier version is kept): {MARTS_REFRESH}."
    else:
        notice = f"{what} saved (${saved.amount_usd:,.2f}): {MARTS_REFRESH}."
    return redirect(f"/{ctx.workspace.slug}/reconciliation", notice)
