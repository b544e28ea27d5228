"""The audit log: control-plane events (membership, device, config, billing) and the captured requests (one row
per synced call, from the marts); each tab paged, searchable, exported as CSV, with a JSON twin."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from halton_api.dashboards import audit_requests, priced_requests
from halton_api.dashboards.filters import RANGES, Filters
from halton_api.dashboards.page_models import RequestTable
from halton_api.dashboards.view import open_view, render_view
from halton_api.dashboards.workspace_facts import WorkspaceFacts
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader, StreamConn, StreamMember
from halton_api.models import AuditPage
from halton_api.pages import render
from halton_api.store import audit
from halton_meter.csv_export import SafeCsvWriter

router = APIRouter(prefix="/v1/{workspace}/audit", tags=["audit"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

PAGE_SIZE = 50
Search = Annotated[
    str | None, Query(max_length=200, description="Matches event, actor, resource or details.")
]
Before = Annotated[int | None, Query(ge=1, le=2**62, description="`next_before` of the previous page.")]
Kind = Annotated[
    Literal["membership", "device", "config", "billing"] | None,
    Query(
        description="Only events of this kind (by event-name prefix: "
        + "; ".join(
            f"{kind}: {', '.join(p + '*' for p in prefixes)}" for kind, prefixes in audit.KINDS.items()
        )
        + ")."
    ),
]
RequestSearch = Annotated[
    str | None, Query(max_length=200, description="A provider_request_id (or part of one), or a request_uid.")
]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")]
Prompt = Annotated[
    str | None,
    Query(
        max_length=128,
        pattern="^[0-9a-zA-Z:_-]+$",
        description="Only one prompt cluster's requests (its hash).",
    ),
]
KIND_LABELS = {"membership": "Membership", "device": "Devices", "config": "Config", "billing": "Billing"}
CSV_COLUMNS = ("id", "created_at", "actor_type", "actor_id", "actor_label", "event", "resource_type", "resource_id",
               "resource_label", "details")  # fmt: skip


@router.get(
    "",
    response_model=AuditPage,
    summary="Audit events, newest first (of the rail's filters, the dates — when given — and providers apply)",
)
async def list_events(
    request: Request,
    ctx: ApiReader,
    conn: Conn,
    filters: RailFilters,
    q: Search = None,
    before: Before = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
    kind: Kind = None,
) -> AuditPage:
    return await audit.list_events(
        conn,
        workspace_id=ctx.workspace.id,
        q=q,
        before=before,
        limit=limit,
        kind=kind,
        scope=event_scope(request, filters),
    )


def dated(request: Request) -> bool:
    """Whether the URL chose dates: an audit log shows all time unless asked (the rail's 30-day default is for
    spend)."""
    return any(key in request.query_params for key in ("range", "from", "to"))


def event_scope(request: Request, filters: Filters) -> audit.EventScope:
    """The rail's filters that apply to control-plane events: providers, and the dates when the URL gives them."""
    if not dated(request):
        return audit.EventScope(providers=filters.providers)
    period = filters.period(datetime.now(UTC))
    return audit.EventScope(providers=filters.providers, since=period.start, until=period.end)


@router.get(
    "/requests",
    response_model=RequestTable,
    summary="Captured requests: one row per synced call, newest first (the rail's filters apply)",
)
async def captured_requests_json(
    request: Request,
    ctx: ApiReader,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    q: RequestSearch = None,
    cursor: Cursor = None,
    prompt: Prompt = None,
) -> RequestTable:
    view = await open_view(request, ctx, conn, filters, reader)
    return await audit_requests.build_captured_requests(
        view, search=_search(q), cursor=cursor, prompt_hash=prompt
    )


def _search(q: str | None) -> str | None:
    return (q or "").strip() or None


@pages.get("/audit")
async def audit_page(
    request: Request,
    ctx: Member,
    conn: Conn,
    filters: RailFilters,
    q: Search = None,
    before: Before = None,
    kind: Kind = None,
) -> Response:
    page = await audit.list_events(
        conn,
        workspace_id=ctx.workspace.id,
        q=q,
        before=before,
        limit=PAGE_SIZE,
        kind=kind,
        scope=event_scope(request, filters),
    )
    facts = await WorkspaceFacts.load(conn, ctx.workspace.id)
    return await render(
        request,
        "audit.html",
        conn=conn,
        ctx=ctx,
        page=page,
        q=q or "",
        kind=kind,
        kinds=KIND_LABELS,
        filters=filters,
        period=filters.period(datetime.now(UTC)),
        rail=facts.rail_options([]),
        ranges=RANGES,
        all_time=not dated(request),
        events_rail=True,
        facts=facts,
    )


@pages.get("/audit/requests")
async def captured_requests_page(
    request: Request,
    ctx: Member,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    q: RequestSearch = None,
    cursor: Cursor = None,
    prompt: Prompt = None,
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    search = _search(q)
    return await render_view(
        request,
        "audit_requests.html",
        view,
        conn,
        lambda: audit_requests.build_captured_requests(
            view, search=search, cursor=cursor, prompt_hash=prompt
        ),
        q=search or "",
        prompt=prompt,
    )


@pages.get("/audit/requests.csv")
async def captured_requests_csv(
    request: Request,
    ctx: Member,
    conn: Conn,
    filters: RailFilters,
    reader: Reader,
    q: RequestSearch = None,
    cursor: Cursor = None,
    prompt: Prompt = None,
) -> Response:
    """The rows the page shows for the same query (one page: the visible rows)."""
    view = await open_view(request, ctx, conn, filters, reader)
    table = await audit_requests.build_captured_requests(
        view, search=_search(q), cursor=cursor, prompt_hash=prompt
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return priced_requests.csv_response(table, f"{ctx.workspace.slug}-requests-{stamp}.csv")


@pages.get("/audit.csv")
async def audit_csv(
    request: Request,
    ctx: StreamMember,
    conn: StreamConn,
    filters: RailFilters,
    q: Search = None,
    kind: Kind = None,
) -> Response:
    scope = event_scope(request, filters)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = SafeCsvWriter(buffer)
        writer.writerow(CSV_COLUMNS)
        async for event in audit.iter_events(
            conn, workspace_id=ctx.workspace.id, q=q, kind=kind, scope=scope
        ):
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
