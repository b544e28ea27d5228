"""Checking a PDF someone holds: did this workspace sign it, is it unaltered, and were these exact bytes issued?

Three independent answers, each from its own source:
- the signature, validated by `signing.verify_pdf` against the workspace's own certificates (live and retired),
  which says who signed, when, and whether any signed byte changed since;
- the SHA-256 of the bytes, looked up in the `report.signed` audit events: a pack issued here is in the log
  with its title, period and who asked for it;
- the certificate that signed it, when it is not this workspace's: a pack from another workspace (or any other
  signer) is named as such, with the signer its certificate states.
Input that is not a PDF at all (empty, over the size limit, not starting `%PDF-`, unreadable) is refused with
`Invalid` naming what is wrong; a readable PDF always gets a verdict, even if that verdict is "unsigned".
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import anyio.to_thread
from cryptography import x509

from halton_api.errors import Invalid
from halton_api.models import WorkspacePublic
from halton_api.pdf.signing import SignatureCheck, verify_pdf
from halton_api.store import Connection, issued_reports, signing_keys
from halton_api.store.issued_reports import IssuedReport

log = logging.getLogger(__name__)

# Reports are a few hundred kilobytes; a twelve-month report about one megabyte. Anything much larger is not ours.
MAX_PDF_BYTES = 20 * 1024 * 1024
# A PDF's header may follow a little junk (some mailers prepend a line); readers look in the first kilobyte.
HEADER_WINDOW = 1024

Verdict = Literal["verified", "not_issued", "altered", "other_signer", "unsigned"]


@dataclass(frozen=True)
class PackCheck:
    """The verdict on one PDF, for the verify page and `POST /v1/{workspace}/reports/verify`."""

    verdict: Verdict
    # One sentence for a person: what the verdict means for this file.
    summary: str
    sha256: str
    size: int
    workspace_slug: str
    workspace_name: str
    # The signature is intact, covers the whole file and verifies with one of this workspace's certificates.
    signature_valid: bool
    signer: str | None
    signed_at: datetime | None
    certificate_fingerprint: str | None
    # This workspace's `report.signed` event for exactly these bytes, if there is one.
    issued: IssuedReport | None

    @property
    def ok(self) -> bool:
        return self.verdict == "verified"


def _kilobytes(n: int) -> str:
    return f"{n / 1024:,.0f} KB" if n < 1024 * 1024 else f"{n / (1024 * 1024):,.1f} MB"


def too_large(size: int) -> str:
    return (
        f"the file is {_kilobytes(size)}; a report pack is at most {_kilobytes(MAX_PDF_BYTES)}: "
        "this is not a pack this workspace issued"
    )


def check_is_pdf(data: bytes, filename: str = "the file") -> None:
    """Refuse what cannot be a pack before any parsing: empty, too large, or not a PDF."""
    if not data:
        raise Invalid(f"{filename} is empty: choose the PDF of a report pack")
    if len(data) > MAX_PDF_BYTES:
        raise Invalid(f"{filename}: {too_large(len(data))}")
    if b"%PDF-" not in data[:HEADER_WINDOW]:
        raise Invalid(
            f"{filename} is not a PDF (it does not start with %PDF-): choose the PDF of a report pack"
        )


def _verdict(
    check: SignatureCheck, ours: set[str], issued: IssuedReport | None, workspace: WorkspacePublic
) -> tuple[Verdict, str]:
    name = workspace.name
    if not check.signed:
        return "unsigned", (
            f"This PDF carries no signature: it is not a pack {name} issued (every pack is signed when it is "
            "generated). Generate the report again, or ask its sender for the file they downloaded."
        )
    if check.certificate_fingerprint is None:
        return "altered", (
            f"This PDF's signature is damaged and cannot be checked ({check.problem}): the file was changed "
            "after it was signed. Do not rely on its figures."
        )
    if check.certificate_fingerprint not in ours:
        return "other_signer", (
            f"This PDF was signed by “{check.signer}”, whose certificate is not {name}'s: it is not a pack of "
            f"this workspace. Check it in the workspace that issued it."
        )
    if not (check.intact and check.valid):
        return "altered", (
            f"This PDF was signed by {name}, but its content has changed since: the signed bytes no longer "
            "match the signature. Do not rely on its figures."
        )
    if not check.whole_file:
        return "altered", (
            f"This PDF was signed by {name}, but something was added to the file after it was signed "
            "(the signature no longer covers the whole file). Do not rely on it."
        )
    if issued is None:
        return "not_issued", (
            f"The signature is {name}'s and intact, but these exact bytes are not in the audit log as an "
            "issued report: ask an admin to check the audit log before relying on it."
        )
    return "verified", (
        f"Signed by {name} and unaltered: these exact bytes were issued as {issued.label} on "
        f"{issued.issued_at:%d %b %Y at %H:%M UTC}, requested by {issued.issued_by}."
    )


async def verify_pack(
    conn: Connection, *, workspace: WorkspacePublic, pdf_bytes: bytes, filename: str = "the file"
) -> PackCheck:
    """The verdict on `pdf_bytes` as a pack of `workspace`; `Invalid` if it is not a readable PDF at all."""
    check_is_pdf(pdf_bytes, filename)
    certificates = await signing_keys.workspace_certificates(conn, workspace_id=workspace.id)
    trusted = [x509.load_pem_x509_certificate(c.certificate_pem.encode()) for c in certificates]
    try:
        # pyHanko runs an event loop of its own: in a worker thread. With no certificate yet (the workspace has
        # never signed a report) nothing is trusted, and any signature is someone else's.
        check = await anyio.to_thread.run_sync(lambda: verify_pdf(pdf_bytes, trusted))
    except Exception as exc:
        # Whatever a damaged file makes the PDF parser raise (ValueError mostly; KeyError, AttributeError,
        # struct and zlib errors for some truncations): the file is what is wrong, never a 500 of ours.
        log.info("unreadable PDF for workspace %s: %r", workspace.slug, exc)
        raise Invalid(f"{filename} is not a readable PDF ({exc}): choose the PDF of a report pack") from None
    sha256 = hashlib.sha256(pdf_bytes).hexdigest()
    issued = await issued_reports.find_issued_report(conn, workspace_id=workspace.id, sha256=sha256)
    verdict, summary = _verdict(check, {c.fingerprint_sha256 for c in certificates}, issued, workspace)
    return PackCheck(
        verdict=verdict,
        summary=summary,
        sha256=sha256,
        size=len(pdf_bytes),
        workspace_slug=workspace.slug,
        workspace_name=workspace.name,
        signature_valid=check.ok,
        signer=check.signer,
        signed_at=check.signed_at,
        certificate_fingerprint=check.certificate_fingerprint,
        issued=issued,
    )
