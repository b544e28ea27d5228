"""Packs anyone can check: the verify page, its JSON twin, and the workspace certificate to trust.

- `/{workspace}/reports/verify` (members): a form that takes a PDF (a POST with the CSRF token) and shows the
  verdict: is the signature this workspace's and intact, when was it signed, were these exact bytes issued;
- `POST /v1/{workspace}/reports/verify` (an API key or a signed-in member, like the other report endpoints):
  the PDF as the request body (`Content-Type: application/pdf`), the same verdict as JSON. A readable PDF is
  answered 200 whatever the verdict; what is not one is refused (413 too large, 415 not sent as a PDF,
  422 empty, not a PDF, unreadable);
- `/{workspace}/settings/advanced/signing-certificate.pem` (members): the certificates the workspace signs
  with, PEM, for a reader to add to their PDF reader's trust or to give `pdfsig`.
Checking reads only; it changes nothing and writes no audit event.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel

from halton_api.deps import ApiReader, Conn, CsrfProtected, Member
from halton_api.errors import Invalid, NotFound
from halton_api.pages import render
from halton_api.pdf.verification import MAX_PDF_BYTES, PackCheck, too_large, verify_pack
from halton_api.store import signing_keys

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/{workspace}/reports", tags=["reports"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

PDF_TYPES = ("application/pdf", "application/octet-stream")


class IssuedPublic(BaseModel):
    issued_at: datetime
    issued_by: str
    report: str
    kind: str | None
    period: str | None


class PackVerification(BaseModel):
    """What checking a PDF found. `verified` only when the signature is this workspace's, intact and covering
    the whole file, and these exact bytes were issued (their SHA-256 is in the audit log)."""

    verified: bool
    verdict: Literal["verified", "not_issued", "altered", "other_signer", "unsigned"]
    summary: str
    workspace: str
    signature_valid: bool
    signer: str | None
    signed_at: datetime | None
    certificate_fingerprint: str | None
    sha256: str
    bytes: int
    issued: IssuedPublic | None


def _public(check: PackCheck) -> PackVerification:
    issued = check.issued
    return PackVerification(
        verified=check.ok,
        verdict=check.verdict,
        summary=check.summary,
        workspace=check.workspace_slug,
        signature_valid=check.signature_valid,
        signer=check.signer,
        signed_at=check.signed_at,
        certificate_fingerprint=check.certificate_fingerprint,
        sha256=check.sha256,
        bytes=check.size,
        issued=None
        if issued is None
        else IssuedPublic(
            issued_at=issued.issued_at,
            issued_by=issued.issued_by,
            report=issued.label,
            kind=issued.details.get("kind"),
            period=issued.details.get("period"),
        ),
    )


def _too_large(size: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=too_large(size))


async def _body(request: Request) -> bytes:
    """The request body, refused past `MAX_PDF_BYTES` without reading all of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PDF_BYTES:
        raise _too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PDF_BYTES:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/verify",
    response_model=PackVerification,
    summary="Check a PDF: this workspace's signature, intact, and these exact bytes issued",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={413: {"description": "Over 20 MB"}, 415: {"description": "Not sent as application/pdf"}},
)
async def verify_json(request: Request, ctx: ApiReader, conn: Conn) -> PackVerification:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in PDF_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the PDF itself as the request body with `Content-Type: application/pdf` "
            f"(got {media_type or 'no Content-Type'})",
        )
    check = await verify_pack(
        conn, workspace=ctx.workspace, pdf_bytes=await _body(request), filename="the body"
    )
    log.info("verified a PDF for workspace %s: %s (%s)", ctx.workspace.slug, check.verdict, check.sha256)
    return _public(check)


@pages.get("/reports/verify")
async def verify_page(request: Request, ctx: Member, conn: Conn) -> Response:
    """The form: choose a PDF, see whether this workspace signed and issued it."""
    return await render(request, "reports/verify.html", conn=conn, ctx=ctx, check=None, error=None)


@pages.post("/reports/verify", dependencies=[CsrfProtected])
async def verify_upload(
    request: Request, ctx: Member, conn: Conn, pdf: Annotated[UploadFile, File()]
) -> Response:
    filename = pdf.filename or "the file"
    # One byte past the limit is enough to know the file is too big, without holding all of it.
    data = await pdf.read(MAX_PDF_BYTES + 1)
    context: dict[str, Any] = {"check": None, "error": None, "filename": filename}
    status_code = 200
    if len(data) > MAX_PDF_BYTES:
        context["error"], status_code = f"{filename}: {too_large(len(data))}", 413
    else:
        try:
            context["check"] = await verify_pack(
                conn, workspace=ctx.workspace, pdf_bytes=data, filename=filename
            )
        except Invalid as exc:
            context["error"], status_code = exc.detail, exc.status_code
    return await render(
        request, "reports/verify.html", conn=conn, ctx=ctx, status_code=status_code, **context
    )


@pages.get("/settings/advanced/signing-certificate.pem")
async def signing_certificate(ctx: Member, conn: Conn) -> Response:
    """The workspace's report-signing certificates (the live one first), PEM: what a reader adds to their trust."""
    certificates = await signing_keys.workspace_certificates(conn, workspace_id=ctx.workspace.id)
    if not certificates:
        raise NotFound(
            "this workspace has not signed a report yet: its certificate is made with the first signed PDF "
            "(generate one from the executive page or a project)"
        )
    return Response(
        "".join(c.certificate_pem for c in certificates),
        media_type="application/x-pem-file",
        headers={
            "Content-Disposition": f'attachment; filename="{ctx.workspace.slug}-report-signing.pem"',
            "Cache-Control": "private, no-cache",
        },
    )
