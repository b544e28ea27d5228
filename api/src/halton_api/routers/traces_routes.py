"""A request's trace (its full provenance) as a page and as JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from halton_api.dashboards.page_models import TracePublic
from halton_api.dashboards.traces import build_trace
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Day = Annotated[date | None, Query(description="The request's UTC day, when known (a faster lookup).")]


@router.get("/traces/{request_uid}", response_model=TracePublic, summary="One request's provenance")
async def trace_json(
    request: Request,
    ctx: ApiReader,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    request_uid: UUID,
    day: Day = None,
) -> TracePublic:
    return await build_trace(await open_view(request, ctx, conn, filters, reader), request_uid, day)


@pages.get("/traces/{request_uid}")
async def trace_page(
    request: Request,
    ctx: Member,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    request_uid: UUID,
    day: Day = None,
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/trace.html", view, conn, lambda: build_trace(view, request_uid, day)
    )
