"""The overview (a workspace's landing page) and its JSON twin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.dashboards.models import OverviewPublic
from halton_api.dashboards.overview import build_overview
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)


@router.get(
    "/overview",
    response_model=OverviewPublic,
    summary="Overview: headline spend, trend, top projects and models",
)
async def overview_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> OverviewPublic:
    return await build_overview(await open_view(request, ctx, conn, filters, reader))


@pages.get("/overview")
async def overview_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(request, "dashboards/overview.html", view, conn, lambda: build_overview(view))
