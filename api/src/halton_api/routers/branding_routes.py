"""The workspace logo on the advanced settings page ("Branding"): upload, preview, remove. Admins only.

The logo is drawn in the running header of every PDF report (`halton_api.pdf.reports`).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from halton_api.deps import ConfigManager, Conn, CsrfProtected, Member
from halton_api.errors import NotFound
from halton_api.pages import redirect
from halton_api.pdf.logo import MAX_LOGO_BYTES, validate_logo
from halton_api.store import branding

log = logging.getLogger(__name__)

pages = APIRouter(prefix="/{workspace}/settings/advanced/logo", include_in_schema=False)


@pages.post("", dependencies=[CsrfProtected])
async def upload_logo(
    request: Request, ctx: ConfigManager, conn: Conn, logo: Annotated[UploadFile, File()]
) -> Response:
    # One byte past the limit is enough to know the file is too big, without holding all of it.
    data = await logo.read(MAX_LOGO_BYTES + 1)
    if len(data) > MAX_LOGO_BYTES:
        # Report the real size: the rest of the upload is already spooled by the form parser.
        data += await logo.read()
    checked = validate_logo(data, filename=logo.filename or "the file")
    await branding.set_logo(
        conn,
        workspace_id=ctx.workspace.id,
        data=checked.data,
        content_type=checked.content_type,
        actor=ctx.actor,
    )
    return redirect(
        f"/{ctx.workspace.slug}/settings/advanced",
        f"Logo updated ({checked.width}x{checked.height} px): it appears on the next PDF reports",
    )


@pages.post("/remove", dependencies=[CsrfProtected])
async def remove_logo(ctx: ConfigManager, conn: Conn) -> Response:
    removed = await branding.remove_logo(conn, workspace_id=ctx.workspace.id, actor=ctx.actor)
    return redirect(
        f"/{ctx.workspace.slug}/settings/advanced",
        "Logo removed" if removed else "There was no logo to remove",
    )


@pages.get("")
async def logo_image(ctx: Member, conn: Conn) -> Response:
    """The stored logo (the settings page's preview)."""
    logo = await branding.get_logo(conn, workspace_id=ctx.workspace.id)
    if logo is None:
        raise NotFound("this workspace has no logo: upload one on the advanced settings page")
    return Response(
        logo.data,
        media_type=logo.content_type,
        headers={
            "Cache-Control": "private, no-cache",
            "ETag": f'"{logo.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
