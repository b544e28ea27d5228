"""The exports settings page: an owner points the daily Parquet export (halton_pipelines.defs.parquet_exports)
at an S3-compatible bucket, or removes it, and sees how the last run went. The secret access key is sealed at
rest and never shown back: the page shows only the access key id."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import BillingManager, Conn, CsrfProtected, Member, Settings
from halton_api.errors import Invalid
from halton_api.pages import redirect, render
from halton_api.store import export_destinations

pages = APIRouter(prefix="/{workspace}/settings/exports", include_in_schema=False)
# S3's bucket naming rules (the strictest common subset of S3-compatible stores).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")


@pages.get("")
async def exports_page(request: Request, ctx: Member, conn: Conn) -> Response:
    destination = await export_destinations.get(conn, workspace_id=ctx.workspace.id)
    runs = await export_destinations.recent_runs(conn, workspace_id=ctx.workspace.id)
    return await render(
        request, "settings/exports.html", conn=conn, ctx=ctx, destination=destination, runs=runs
    )


def _endpoint(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"the endpoint URL {value!r} is not an http(s) URL: leave it empty for AWS S3")
    return value.rstrip("/")


@pages.post("", dependencies=[CsrfProtected])
async def configure(
    ctx: BillingManager, conn: Conn, settings: Settings,
    bucket: Annotated[str, Form(max_length=63)], access_key_id: Annotated[str, Form(max_length=128)],
    secret_access_key: Annotated[str, Form(max_length=256)], prefix: Annotated[str, Form(max_length=512)] = "",
    endpoint_url: Annotated[str, Form(max_length=512)] = "", region: Annotated[str, Form(max_length=64)] = "",
) -> Response:  # fmt: skip
    bucket, prefix = bucket.strip(), prefix.strip().strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise Invalid(
            f"the bucket name {bucket!r} is not valid: 3 to 63 lowercase letters, digits, dots or hyphens"
        )
    if not _PREFIX.fullmatch(prefix):
        raise Invalid(
            f"the prefix {prefix!r} has characters S3 keys should not: use letters, digits, / - _ ."
        )
    key_id, secret_key, region = access_key_id.strip(), secret_access_key.strip(), region.strip()
    if not key_id or not secret_key:
        raise Invalid("the access key id and the secret access key are both needed to write to the bucket")
    await export_destinations.configure(
        conn, workspace_id=ctx.workspace.id, bucket=bucket, prefix=prefix,
        endpoint_url=_endpoint(endpoint_url.strip()), region=region, access_key_id=key_id,
        secret_access_key=secret_key, secret=settings.secret(), actor=ctx.actor,
    )  # fmt: skip
    return redirect(
        f"/{ctx.workspace.slug}/settings/exports", f"Exports go to s3://{bucket} from the next run"
    )


@pages.post("/remove", dependencies=[CsrfProtected])
async def remove(ctx: BillingManager, conn: Conn) -> Response:
    removed = await export_destinations.remove(conn, workspace_id=ctx.workspace.id, actor=ctx.actor)
    return redirect(
        f"/{ctx.workspace.slug}/settings/exports",
        "Exports stopped: the files already written stay in the bucket"
        if removed
        else "There was no export set up",
    )
