"""Workspaces: the switcher, creating another one, and the overview page with its JSON twin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from halton_api.deps import ApiReader, Conn, CsrfProtected, CurrentUser, Member, WorkspaceContext, Writer
from halton_api.models import MembershipPublic, OverviewPublic
from halton_api.pages import redirect, render
from halton_api.store import Connection, devices, projects, workspaces
from halton_api.store.requests import totals
from halton_api.warehouse_writer import WarehouseError, WarehouseWriter

router = APIRouter(tags=["workspaces"])
pages = APIRouter(include_in_schema=False)


async def overview(conn: Connection, writer: WarehouseWriter, ctx: WorkspaceContext) -> OverviewPublic:
    """Headline totals of a workspace (the dashboards issue replaces this with marts)."""
    databases = writer.databases
    figures = await writer.with_retries(
        lambda client: totals(client, databases=databases, workspace_id=ctx.workspace.id)
    )
    budgets = await projects.list_budgets(conn, workspace_id=ctx.workspace.id)
    workspace_budget = next((b.monthly_amount for b in budgets if b.project_id is None), None)
    return OverviewPublic(
        workspace=ctx.workspace,
        devices_active=await devices.count_active(conn, workspace_id=ctx.workspace.id),
        projects=len(await projects.list_projects(conn, workspace_id=ctx.workspace.id)),
        monthly_budget=workspace_budget,
        **figures,
    )


@router.get(
    "/v1/workspaces", response_model=list[MembershipPublic], summary="Workspaces of the signed-in user"
)
async def list_my_workspaces(user: CurrentUser, conn: Conn) -> list[MembershipPublic]:
    return await workspaces.list_memberships(conn, user_id=user.id)


@router.get("/v1/{workspace}/overview", response_model=OverviewPublic, summary="Headline totals")
async def overview_json(ctx: ApiReader, conn: Conn, writer: Writer) -> OverviewPublic:
    return await overview(conn, writer, ctx)


@pages.get("/workspaces")
async def switcher(request: Request, user: CurrentUser, conn: Conn) -> Response:
    return await render(request, "workspaces.html", conn=conn, user=user)


@pages.post("/workspaces", dependencies=[CsrfProtected])
async def create_workspace(
    user: CurrentUser, conn: Conn, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    workspace = await workspaces.create_workspace(conn, name=name, owner=user)
    return redirect(f"/{workspace.slug}/overview", f"workspace {workspace.name} created")


@pages.get("/{workspace}")
async def workspace_home(ctx: Member) -> Response:
    return RedirectResponse(f"/{ctx.workspace.slug}/overview", status_code=303)


@pages.get("/{workspace}/overview")
async def overview_page(request: Request, ctx: Member, conn: Conn, writer: Writer) -> Response:
    try:
        figures, problem = await overview(conn, writer, ctx), None
    except WarehouseError as error:
        figures, problem = None, str(error)
    return await render(request, "overview.html", conn=conn, ctx=ctx, overview=figures, problem=problem)
