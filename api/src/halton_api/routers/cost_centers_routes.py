"""Cost centers: the roll-up page (create a cost center, move projects between them) and its JSON twin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.dashboards.cost_centers import build_cost_centers
from halton_api.dashboards.page_models import CostCentersPublic
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, ConfigManager, Conn, CsrfProtected, Member, RailFilters, Reader
from halton_api.form_ids import optional_id, required_id
from halton_api.models import ProjectUpdate
from halton_api.pages import redirect
from halton_api.store import projects

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)


@router.get("/cost-center-spend", response_model=CostCentersPublic, summary="Spend rolled up by cost center")
async def cost_centers_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> CostCentersPublic:
    return await build_cost_centers(await open_view(request, ctx, conn, filters, reader))


@pages.get("/cost-centers")
async def cost_centers_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request, "dashboards/cost_centers.html", view, conn, lambda: build_cost_centers(view)
    )


@pages.post("/cost-centers", dependencies=[CsrfProtected])
async def create_cost_center(
    ctx: ConfigManager, conn: Conn, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    center = await projects.create_cost_center(
        conn, workspace_id=ctx.workspace.id, name=name.strip(), actor=ctx.actor
    )
    return redirect(f"/{ctx.workspace.slug}/cost-centers", f"cost center {center.name} created")


@pages.post("/cost-centers/assign", dependencies=[CsrfProtected])
async def assign_project(
    ctx: ConfigManager,
    conn: Conn,
    project_id: Annotated[str, Form(max_length=64)],
    cost_center_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    project = required_id(project_id, "project_id", "projects")
    center = optional_id(cost_center_id, "cost_center_id", "cost centers")
    update = ProjectUpdate(cost_center_id=center, clear_cost_center=center is None)
    saved = await projects.update_project(
        conn, workspace_id=ctx.workspace.id, project_id=project, update=update, actor=ctx.actor
    )
    where = saved.cost_center_name or "no cost center"
    return redirect(f"/{ctx.workspace.slug}/cost-centers", f"{saved.name} now rolls up to {where}")
