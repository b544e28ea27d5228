"""The audit log: a paged, searchable page, its CSV export, and its JSON twin."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from halton_api.deps import ApiReader, Conn, Member, StreamConn, StreamMember
from halton_api.models import AuditPage
from halton_api.pages import render
from halton_api.store import audit

router = APIRouter(prefix="/v1/{workspace}/audit", tags=["audit"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

PAGE_SIZE = 50
Search = Annotated[
    str | None, Query(max_length=200, description="Matches event, actor, resource or details.")
]
Before = Annotated[int | None, Query(ge=1, le=2**62, description="`next_before` of the previous page.")]
CSV_COLUMNS = ("id", "created_at", "actor_type", "actor_id", "actor_label", "event", "resource_type", "resource_id",
               "resource_label", "details")  # fmt: skip


@router.get("", response_model=AuditPage, summary="Audit events, newest first")
async def list_events(
    ctx: ApiReader,
    conn: Conn,
    q: Search = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
) -> AuditPage:
    return await audit.list_events(conn, workspace_id=ctx.workspace.id, q=q, before=before, limit=limit)


@pages.get("/audit")
async def audit_page(
    request: Request, ctx: Member, conn: Conn, q: Search = None, before: Before = None
) -> Response:
    page = await audit.list_events(conn, workspace_id=ctx.workspace.id, q=q, before=before, limit=PAGE_SIZE)
    return await render(request, "audit.html", conn=conn, ctx=ctx, page=page, q=q or "")


@pages.get("/audit.csv")
async def audit_csv(ctx: StreamMember, conn: StreamConn, q: Search = None) -> Response:
    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async for event in audit.iter_events(conn, workspace_id=ctx.workspace.id, q=q):
            writer.writerow(
                [
                    event.id,
                    event.created_at.astimezone(UTC).isoformat(),
                    event.actor_type,
                    event.actor_id or "",
                    event.actor_label,
                    event.event,
                    event.resource_type,
                    event.resource_id,
                    event.resource_label,
                    json.dumps(event.details, sort_keys=True),
                ]
            )
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{ctx.workspace.slug}-audit-{stamp}.csv"'},
    )
