"""Optimisation: the recommendations (accept, dismiss, re-open), the catalog of checks (suppress per project) and
realised savings, as pages and as JSON. Deciding and suppressing change what the whole workspace sees: admins."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.optimization import (
    KIND_LABELS,
    build_catalog,
    build_optimization,
    build_realised,
    current_row,
)
from halton_api.dashboards.page_models import (
    OptimizationCatalogPublic,
    OptimizationPublic,
    RealisedSavingsPublic,
)
from halton_api.dashboards.reader import MartsReader
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import (
    ApiReader,
    ConfigManager,
    Conn,
    CsrfProtected,
    Member,
    RailFilters,
    Reader,
    WorkspaceContext,
)
from halton_api.errors import NotFound
from halton_api.pages import redirect
from halton_api.store import Connection
from halton_api.store import recommendation_decisions as decisions

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Back = Annotated[str, Form(max_length=2000)]
Kind = Annotated[str, Form(max_length=32)]
Project = Annotated[str, Form(min_length=1, max_length=200)]


def _back(slug: str, target: str, default: str) -> str:
    """Where a form returns to: the page it was posted from (keeping its filters, not its old notice), never
    another site."""
    home = f"/{slug}/optimization"
    if not (target == home or target.startswith((f"{home}?", f"{home}/"))):
        return f"{home}{default}"
    path, _, query = target.partition("?")
    kept = urlencode([(k, v) for k, v in parse_qsl(query) if k != "notice"])
    return f"{path}?{kept}" if kept else path


# --- JSON -------------------------------------------------------------------------------------------------


@router.get(
    "/optimization",
    response_model=OptimizationPublic,
    summary="Optimisation: the current recommendations with their savings, evidence and decisions",
)
async def optimization_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> OptimizationPublic:
    return await build_optimization(await open_view(request, ctx, conn, filters, reader), conn)


@router.get(
    "/optimization/catalog",
    response_model=OptimizationCatalogPublic,
    summary="Every optimisation check that has fired, per project and model, with suppressions",
)
async def catalog_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> OptimizationCatalogPublic:
    return await build_catalog(await open_view(request, ctx, conn, filters, reader), conn)


@router.get(
    "/optimization/savings",
    response_model=RealisedSavingsPublic,
    summary="Realised savings: accepted recommendations against the baseline they quoted",
)
async def savings_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> RealisedSavingsPublic:
    return await build_realised(await open_view(request, ctx, conn, filters, reader), conn)


# --- pages ------------------------------------------------------------------------------------------------


@pages.get("/optimization")
async def optimization_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/optimization.html", view, conn, lambda: build_optimization(view, conn),
        providers=PROVIDERS, tab="recommendations",
    )  # fmt: skip


@pages.get("/optimization/catalog")
async def catalog_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/optimization_catalog.html", view, conn, lambda: build_catalog(view, conn),
        providers=PROVIDERS, kinds=KIND_LABELS, tab="catalog",
    )  # fmt: skip


@pages.get("/optimization/savings")
async def savings_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/optimization_savings.html", view, conn, lambda: build_realised(view, conn),
        providers=PROVIDERS, tab="savings",
    )  # fmt: skip


async def _decide(
    ctx: WorkspaceContext,
    conn: Connection,
    reader: MartsReader,
    recommendation_id: UUID,
    status: str,
    back: str,
) -> Response:
    row = await reader.run(lambda client, m: current_row(client, m, ctx.workspace.id, recommendation_id))
    if row is None:
        raise NotFound(
            "no current recommendation with that id in this workspace: it may have gone from the newest run "
            "of the checks; reload the optimisation page"
        )
    await decisions.decide(conn, workspace_id=ctx.workspace.id, row=row, status=status, actor=ctx.actor)
    verb = "accepted: realised savings count from today" if status == "accepted" else "dismissed"
    return redirect(_back(ctx.workspace.slug, back, ""), f"{row['title']} on {row['project']} {verb}")


@pages.post("/optimization/{recommendation_id}/accept", dependencies=[CsrfProtected])
async def accept(
    ctx: ConfigManager, conn: Conn, reader: Reader, recommendation_id: UUID, back: Back = ""
) -> Response:
    return await _decide(ctx, conn, reader, recommendation_id, "accepted", back)


@pages.post("/optimization/{recommendation_id}/dismiss", dependencies=[CsrfProtected])
async def dismiss(
    ctx: ConfigManager, conn: Conn, reader: Reader, recommendation_id: UUID, back: Back = ""
) -> Response:
    return await _decide(ctx, conn, reader, recommendation_id, "dismissed", back)


@pages.post("/optimization/{recommendation_id}/reopen", dependencies=[CsrfProtected])
async def reopen(ctx: ConfigManager, conn: Conn, recommendation_id: UUID, back: Back = "") -> Response:
    removed = await decisions.reopen(
        conn, workspace_id=ctx.workspace.id, recommendation_id=recommendation_id, actor=ctx.actor
    )
    return redirect(
        _back(ctx.workspace.slug, back, ""), f"{removed.title} on {removed.project} is open again"
    )


@pages.post("/optimization/catalog/suppress", dependencies=[CsrfProtected])
async def suppress(ctx: ConfigManager, conn: Conn, kind: Kind, project: Project, back: Back = "") -> Response:
    await decisions.suppress(conn, workspace_id=ctx.workspace.id, kind=kind, project=project, actor=ctx.actor)
    label = KIND_LABELS.get(kind, kind)
    return redirect(_back(ctx.workspace.slug, back, "/catalog"), f"{label} suppressed for {project}")


@pages.post("/optimization/catalog/unsuppress", dependencies=[CsrfProtected])
async def unsuppress(
    ctx: ConfigManager, conn: Conn, kind: Kind, project: Project, back: Back = ""
) -> Response:
    await decisions.unsuppress(
        conn, workspace_id=ctx.workspace.id, kind=kind, project=project, actor=ctx.actor
    )
    label = KIND_LABELS.get(kind, kind)
    return redirect(_back(ctx.workspace.slug, back, "/catalog"), f"{label} shows again for {project}")
