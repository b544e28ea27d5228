"""Members and invitations: the members settings page and its JSON twin."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from halton_api.deps import ApiReader, Conn, CsrfProtected, Member, MemberManager, Settings, WorkspaceContext
from halton_api.errors import Forbidden, Invalid
from halton_api.models import InvitationCreate, InvitationCreated, InvitationPublic, MemberPublic
from halton_api.pages import redirect, render
from halton_api.roles import Permission, Role
from halton_api.store import Connection, invitations, workspaces

router = APIRouter(prefix="/v1/{workspace}", tags=["members"])
pages = APIRouter(prefix="/{workspace}/settings/members", include_in_schema=False)


@router.get("/members", response_model=list[MemberPublic], summary="Members and their roles")
async def list_members(ctx: ApiReader, conn: Conn) -> list[MemberPublic]:
    return await workspaces.list_members(conn, workspace_id=ctx.workspace.id)


@router.get("/invitations", response_model=list[InvitationPublic], summary="Invitations, newest first")
async def list_invitations(ctx: ApiReader, conn: Conn) -> list[InvitationPublic]:
    return await invitations.list_invitations(conn, workspace_id=ctx.workspace.id)


async def _page(request: Request, ctx: WorkspaceContext, conn: Connection, **extra: object) -> Response:
    return await render(
        request,
        "settings/members.html",
        conn=conn,
        ctx=ctx,
        members=await workspaces.list_members(conn, workspace_id=ctx.workspace.id),
        invitations=await invitations.list_invitations(conn, workspace_id=ctx.workspace.id),
        roles=("owner", "admin", "member", "viewer")
        if ctx.can(Permission.MANAGE_OWNERS)
        else ("admin", "member", "viewer"),
        **extra,
    )


@pages.get("")
async def members_page(request: Request, ctx: Member, conn: Conn) -> Response:
    return await _page(request, ctx, conn)


def _check_grant(ctx: WorkspaceContext, role: Role) -> None:
    if role == "owner" and not ctx.can(Permission.MANAGE_OWNERS):
        raise Forbidden("only an owner can grant the owner role")


@pages.post("/invite", dependencies=[CsrfProtected])
async def invite(
    request: Request,
    ctx: MemberManager,
    conn: Conn,
    settings: Settings,
    email: Annotated[str, Form(max_length=254)],
    role: Annotated[Role, Form()] = "member",
) -> Response:
    try:
        wanted = InvitationCreate(email=email.strip(), role=role)
    except ValidationError:
        raise Invalid(f"{email!r} is not an email address") from None
    _check_grant(ctx, wanted.role)
    invitation, token = await invitations.create_invitation(
        conn,
        workspace_id=ctx.workspace.id,
        email=wanted.email,
        role=wanted.role,
        ttl=timedelta(days=settings.invitation_ttl_days),
        actor=ctx.actor,
    )
    created = InvitationCreated(**invitation.model_dump(), link=f"{settings.public_url}/invitations/{token}")
    # The link is shown on this response only: we keep no copy of its token.
    return await _page(request, ctx, conn, created=created)


@pages.post("/invitations/{invitation_id}/revoke", dependencies=[CsrfProtected])
async def revoke_invitation(invitation_id: UUID, ctx: MemberManager, conn: Conn) -> Response:
    await invitations.revoke_invitation(
        conn, workspace_id=ctx.workspace.id, invitation_id=invitation_id, actor=ctx.actor
    )
    return redirect(f"/{ctx.workspace.slug}/settings/members", "invitation revoked")


@pages.post("/{user_id}/role", dependencies=[CsrfProtected])
async def change_role(
    user_id: UUID, ctx: MemberManager, conn: Conn, role: Annotated[Role, Form()]
) -> Response:
    _check_grant(ctx, role)
    member = await workspaces.change_role(
        conn, workspace_id=ctx.workspace.id, user_id=user_id, role=role, actor=ctx.actor, actor_role=ctx.role
    )
    return redirect(f"/{ctx.workspace.slug}/settings/members", f"{member.email} is now {member.role}")


@pages.post("/{user_id}/remove", dependencies=[CsrfProtected])
async def remove_member(user_id: UUID, ctx: MemberManager, conn: Conn) -> Response:
    await workspaces.remove_member(
        conn, workspace_id=ctx.workspace.id, user_id=user_id, actor=ctx.actor, actor_role=ctx.role
    )
    return redirect(f"/{ctx.workspace.slug}/settings/members", "member removed")
