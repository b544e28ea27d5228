"""Opening and accepting an invitation link (`/invitations/hm_inv_…`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.deps import Conn, CsrfProtected, CurrentUser, MaybeUser
from halton_api.errors import NotFound
from halton_api.pages import redirect, render
from halton_api.store import invitations

router = APIRouter(prefix="/invitations", include_in_schema=False)


@router.get("/{token}")
async def invitation_page(request: Request, token: str, user: MaybeUser, conn: Conn) -> Response:
    found = await invitations.find_invitation(conn, token=token)
    if found is None:
        raise NotFound("this invitation link is not valid: ask a workspace admin for a new one")
    return await render(
        request,
        "invitation.html",
        conn=conn,
        user=user,
        token=token,
        invitation=found.invitation,
        workspace=found.workspace,
    )


@router.post("/{token}/accept", dependencies=[CsrfProtected])
async def accept(token: str, user: CurrentUser, conn: Conn) -> Response:
    workspace = await invitations.accept_invitation(conn, token=token, user=user)
    return redirect(f"/{workspace.slug}/overview", f"you joined {workspace.name}")
