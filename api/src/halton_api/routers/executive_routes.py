"""The executive view (large type, few charts: the page to send to a CFO) and its JSON twin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.dashboards.executive import build_executive
from halton_api.dashboards.page_models import ExecutivePublic
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)


@router.get(
    "/executive",
    response_model=ExecutivePublic,
    summary="Executive view: this month, last month, year to date, top projects, reconciliation, budget",
)
async def executive_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> ExecutivePublic:
    return await build_executive(await open_view(request, ctx, conn, filters, reader))


@pages.get("/executive")
async def executive_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(request, "dashboards/executive.html", view, conn, lambda: build_executive(view))
