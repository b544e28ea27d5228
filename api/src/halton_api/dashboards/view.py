"""A dashboard request's context: who asks about which workspace, with which filters, resolved once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from halton_api.cloud_settings import CloudSettings
from halton_api.dashboards import spend
from halton_api.dashboards.filters import RANGES, Filters, Scope
from halton_api.dashboards.reader import MartsReader
from halton_api.dashboards.workspace_facts import WorkspaceFacts
from halton_api.deps import WorkspaceContext
from halton_api.pages import render
from halton_api.store import Connection
from halton_api.warehouse_access.client_pool import WarehouseError

RAIL_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class View:
    ctx: WorkspaceContext
    facts: WorkspaceFacts
    filters: Filters
    scope: Scope
    reader: MartsReader
    settings: CloudSettings

    @property
    def slug(self) -> str:
        return self.ctx.workspace.slug

    def href(self, path: str, **changes: Any) -> str:
        """A link to another view of this workspace that keeps the rail (with `changes` applied)."""
        return f"/{self.slug}/{path}{self.filters.query(**changes)}"


async def open_view(
    request: Request, ctx: WorkspaceContext, conn: Connection, filters: Filters, reader: MartsReader
) -> View:
    facts = await WorkspaceFacts.load(conn, ctx.workspace.id)
    now = datetime.now(UTC)
    return View(
        ctx=ctx,
        facts=facts,
        filters=filters,
        scope=facts.scope(filters, now),
        reader=reader,
        settings=request.app.state.settings,
    )


async def render_view(
    request: Request,
    template: str,
    view: View,
    conn: Connection,
    build: Callable[[], Awaitable[Any]],
    **context: Any,
) -> HTMLResponse:
    """Render a dashboard page with `data=await build()` (the JSON twin's object) and the rail; when the
    warehouse cannot answer, the page still renders, saying why, instead of failing."""
    try:
        data, problem = await build(), None
        workspace_id = view.ctx.workspace.id
        models = await view.reader.cached(
            ("models", workspace_id),
            RAIL_TTL_SECONDS,
            lambda client, m: spend.models_seen(client, m, workspace_id),
        )
    except WarehouseError as error:
        data, problem, models = None, str(error), []
    return await render(
        request,
        template,
        conn=conn,
        ctx=view.ctx,
        view=view,
        filters=view.filters,
        period=view.scope.period,
        rail=view.facts.rail_options(models),
        ranges=RANGES,
        data=data,
        problem=problem,
        **context,
    )
