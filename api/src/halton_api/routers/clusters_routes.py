"""Prompt clusters (duplicates, caching opportunities, loops) as a page and as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from halton_api.dashboards.clusters import build_clusters
from halton_api.dashboards.page_models import ClustersPublic
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Kind = Annotated[str | None, Query(description="loop or duplicate; both when absent.", max_length=16)]


@router.get("/clusters", response_model=ClustersPublic, summary="Repeated prompts: duplicates and loops")
async def clusters_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader, kind: Kind = None
) -> ClustersPublic:
    return await build_clusters(await open_view(request, ctx, conn, filters, reader), kind)


@pages.get("/clusters")
async def clusters_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader, kind: Kind = None
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/clusters.html", view, conn, lambda: build_clusters(view, kind or None), kind=kind
    )
