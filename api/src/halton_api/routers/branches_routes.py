"""Branches & tickets: spend by where the calls came from (ticket, git branch, tool), as a page and as JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.dashboards.branches import build_branches
from halton_api.dashboards.page_models import BranchesPublic
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)


@router.get("/branches", response_model=BranchesPublic, summary="Spend by ticket, git branch and tool")
async def branches_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> BranchesPublic:
    return await build_branches(await open_view(request, ctx, conn, filters, reader))


@pages.get("/branches")
async def branches_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(request, "dashboards/branches.html", view, conn, lambda: build_branches(view))
