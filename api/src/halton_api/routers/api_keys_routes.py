"""Workspace API keys: the advanced settings page (create, shown once; revoke) and its JSON twin."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import ApiReader, Conn, CsrfProtected, KeyManager, Member, WorkspaceContext
from halton_api.models import ApiKeyPublic
from halton_api.pages import redirect, render
from halton_api.store import Connection, api_keys, branding, signing_keys

router = APIRouter(prefix="/v1/{workspace}/api-keys", tags=["api keys"])
pages = APIRouter(prefix="/{workspace}/settings/advanced", include_in_schema=False)


@router.get("", response_model=list[ApiKeyPublic], summary="API keys, by their visible prefix")
async def list_api_keys(ctx: ApiReader, conn: Conn) -> list[ApiKeyPublic]:
    return await api_keys.list_api_keys(conn, workspace_id=ctx.workspace.id)


async def _advanced(request: Request, ctx: WorkspaceContext, conn: Connection, **extra: Any) -> Response:
    """The advanced settings page: API keys, branding, and the report-signing certificates."""
    return await render(
        request,
        "settings/advanced.html",
        conn=conn,
        ctx=ctx,
        api_keys=await api_keys.list_api_keys(conn, workspace_id=ctx.workspace.id),
        logo=await branding.get_logo(conn, workspace_id=ctx.workspace.id),
        certificates=await signing_keys.workspace_certificates(conn, workspace_id=ctx.workspace.id),
        **extra,
    )


@pages.get("")
async def advanced_page(request: Request, ctx: Member, conn: Conn) -> Response:
    return await _advanced(request, ctx, conn)


@pages.post("/api-keys", dependencies=[CsrfProtected])
async def create_api_key(
    request: Request, ctx: KeyManager, conn: Conn, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    created = await api_keys.create_api_key(conn, workspace_id=ctx.workspace.id, name=name, actor=ctx.actor)
    # The key is shown on this response only: we keep no copy of it.
    return await _advanced(request, ctx, conn, created=created)


@pages.post("/api-keys/{key_id}/revoke", dependencies=[CsrfProtected])
async def revoke_api_key(key_id: UUID, ctx: KeyManager, conn: Conn) -> Response:
    revoked = await api_keys.revoke_api_key(
        conn, workspace_id=ctx.workspace.id, key_id=key_id, actor=ctx.actor
    )
    return redirect(f"/{ctx.workspace.slug}/settings/advanced", f"API key {revoked.key_prefix}… revoked")
