"""Workspace API keys: the advanced settings page (create, shown once; revoke) and its JSON twin."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import ApiReader, Conn, CsrfProtected, KeyManager, Member
from halton_api.models import ApiKeyPublic
from halton_api.pages import redirect, render
from halton_api.store import api_keys, branding

router = APIRouter(prefix="/v1/{workspace}/api-keys", tags=["api keys"])
pages = APIRouter(prefix="/{workspace}/settings/advanced", include_in_schema=False)


@router.get("", response_model=list[ApiKeyPublic], summary="API keys, by their visible prefix")
async def list_api_keys(ctx: ApiReader, conn: Conn) -> list[ApiKeyPublic]:
    return await api_keys.list_api_keys(conn, workspace_id=ctx.workspace.id)


@pages.get("")
async def advanced_page(request: Request, ctx: Member, conn: Conn) -> Response:
    keys = await api_keys.list_api_keys(conn, workspace_id=ctx.workspace.id)
    logo = await branding.get_logo(conn, workspace_id=ctx.workspace.id)
    return await render(request, "settings/advanced.html", conn=conn, ctx=ctx, api_keys=keys, logo=logo)


@pages.post("/api-keys", dependencies=[CsrfProtected])
async def create_api_key(
    request: Request, ctx: KeyManager, conn: Conn, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    created = await api_keys.create_api_key(conn, workspace_id=ctx.workspace.id, name=name, actor=ctx.actor)
    keys = await api_keys.list_api_keys(conn, workspace_id=ctx.workspace.id)
    logo = await branding.get_logo(conn, workspace_id=ctx.workspace.id)
    # The key is shown on this response only: we keep no copy of it.
    return await render(
        request, "settings/advanced.html", conn=conn, ctx=ctx, api_keys=keys, logo=logo, created=created
    )


@pages.post("/api-keys/{key_id}/revoke", dependencies=[CsrfProtected])
async def revoke_api_key(key_id: UUID, ctx: KeyManager, conn: Conn) -> Response:
    revoked = await api_keys.revoke_api_key(
        conn, workspace_id=ctx.workspace.id, key_id=key_id, actor=ctx.actor
    )
    return redirect(f"/{ctx.workspace.slug}/settings/advanced", f"API key {revoked.key_prefix}… revoked")
