"""Workspaces: the switcher, creating another one, and a workspace's home (its overview)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from halton_api.deps import Conn, CsrfProtected, CurrentUser, Member
from halton_api.models import MembershipPublic
from halton_api.pages import redirect, render
from halton_api.store import workspaces

router = APIRouter(tags=["workspaces"])
pages = APIRouter(include_in_schema=False)


@router.get(
    "/v1/workspaces", response_model=list[MembershipPublic], summary="Workspaces of the signed-in user"
)
async def list_my_workspaces(user: CurrentUser, conn: Conn) -> list[MembershipPublic]:
    return await workspaces.list_memberships(conn, user_id=user.id)


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
