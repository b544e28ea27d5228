"""The overview (a workspace's landing page) and its JSON twin, and its sync banner on its own."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.dashboards.overview import build_overview
from halton_api.dashboards.page_models import OverviewPublic, SyncStatus
from halton_api.dashboards.view import open_view, render_view
from halton_api.dashboards.workspace_facts import WorkspaceFacts
from halton_api.deps import ApiReader, Conn, Member, Prices, RailFilters, Reader
from halton_api.store.spend_anomalies import list_anomalies

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)


@router.get(
    "/overview",
    response_model=OverviewPublic,
    summary="Overview: headline spend, trend, top projects and models",
)
async def overview_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader, catalogue: Prices
) -> OverviewPublic:
    return await build_overview(await open_view(request, ctx, conn, filters, reader), catalogue)


@router.get(
    "/sync",
    response_model=SyncStatus,
    summary="The sync banner: each paired device's state as its meter reported it",
)
async def sync_json(request: Request, ctx: ApiReader, conn: Conn) -> SyncStatus:
    # From the control plane alone: it answers while the warehouse or the marts are not there yet.
    facts = await WorkspaceFacts.load(conn, ctx.workspace.id)
    return facts.sync_status(request.app.state.settings, datetime.now(UTC))


@pages.get("/overview")
async def overview_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader, catalogue: Prices
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    # The banner needs no warehouse: shown even when the marts cannot answer (a new workspace's first sync).
    sync = view.facts.sync_status(view.settings, view.scope.now)
    # Open runaway anomalies come from the control plane too: shown whatever the warehouse says.
    anomalies = await list_anomalies(conn, workspace_id=ctx.workspace.id)
    return await render_view(
        request,
        "dashboards/overview.html",
        view,
        conn,
        lambda: build_overview(view, catalogue),
        sync=sync,
        anomalies=anomalies,
    )
