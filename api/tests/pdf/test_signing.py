"""Signed reports: one key per workspace, made once, stored encrypted; a signature readers accept and
that any change breaks; the document's hash in the audit log. Real PostgreSQL, WeasyPrint and pyHanko."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from datetime import date

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from psycopg.rows import dict_row
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from halton_api import postgres
from halton_api.models import WorkspacePublic
from halton_api.pdf.render import render_pdf_sync
from halton_api.pdf.signing import (
    SignedReport,
    new_signing_identity,
    sign_pdf,
    sign_report,
    verify_pdf,
    workspace_signing_key,
)
from halton_api.store import audit
from halton_api.store.audit import Actor
from halton_api.store.signing_keys import SigningKeyUnreadable
from halton_api.testing import factories
from halton_api.testing.pdf import page_count, pdf_signatures

SECRET = b"test-secret-key-that-is-long-enough-0123456789"
REPORT = SignedReport(
    kind="executive",
    title="Executive summary",
    period_start=date(2026, 5, 1),
    period_end=date(2026, 5, 31),
    filters={"provider": ["anthropic", "openai"], "project": ["acme/app"]},
)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    postgres.migrate(postgres_url)
    return postgres_url


@pytest.fixture
def workspace(database_url: str) -> WorkspacePublic:
    owner = factories.make_user(database_url)
    return factories.make_workspace(database_url, owner=owner, name="Acme Robotics")


@pytest.fixture(scope="module")
def report_pdf(sample_report: Callable[..., str]) -> bytes:
    # Two pages of the sample report: enough to sign, quick to render.
    return render_pdf_sync(sample_report(rows=40))


def _key_rows(database_url: str, workspace: WorkspacePublic) -> list[dict]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM signing_keys WHERE workspace_id = %s", (workspace.id,)).fetchall()


def _signed(database_url: str, workspace: WorkspacePublic, pdf: bytes, actor: Actor | None = None) -> bytes:
    return factories.run(
        database_url,
        lambda c: sign_report(
            c,
            workspace=workspace,
            secret=SECRET,
            pdf_bytes=pdf,
            report=REPORT,
            actor=actor or Actor.system(),
            location="halton.example.com",
        ),
    )


def test_a_workspace_key_is_made_on_first_use_and_then_reused(
    database_url: str, workspace: WorkspacePublic
) -> None:
    assert _key_rows(database_url, workspace) == []
    first = factories.run(
        database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET)
    )
    again = factories.run(
        database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET)
    )
    assert again.fingerprint_sha256 == first.fingerprint_sha256
    assert len(_key_rows(database_url, workspace)) == 1

    subject = first.certificate.subject.rfc4514_string()
    assert subject == "O=Acme Robotics,CN=Acme Robotics (Halton Meter)"
    usage = first.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    # A CA that can issue nothing below itself: what NSS-based readers (pdfsig) accept as a trust anchor.
    constraints = first.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0 and usage.key_cert_sign


async def blocked_on_a_lock(database_url: str, pid: int, task: asyncio.Task) -> bool:
    """Whether the backend `pid` came to wait on a lock while `task` was still running: PostgreSQL says so
    (pg_stat_activity), so a slow machine delays the answer but cannot fake it."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
        for _ in range(1200):  # a minute at most
            row = await (
                await watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
            ).fetchone()
            if row and row[0] == "Lock":
                return not task.done()
            if task.done():
                return False
            await asyncio.sleep(0.05)
    return False


def test_two_first_uses_at_once_make_one_key(database_url: str, workspace: WorkspacePublic) -> None:
    async def main() -> tuple[str, str, bool]:
        connect = psycopg.AsyncConnection.connect
        async with (
            await connect(database_url, row_factory=dict_row) as a,
            await connect(database_url, row_factory=dict_row) as b,
        ):

            async def second() -> str:
                async with b.transaction():
                    return (
                        await workspace_signing_key(b, workspace=workspace, secret=SECRET)
                    ).fingerprint_sha256

            async with a.transaction():
                key_a = await workspace_signing_key(a, workspace=workspace, secret=SECRET)
                # The second request finds no key (the first has not committed), makes its own and tries to
                # store it: the live-key index makes it wait for the first transaction.
                task = asyncio.create_task(second())
                waited = await blocked_on_a_lock(database_url, b.info.backend_pid, task)
            return key_a.fingerprint_sha256, await task, waited

    first, second, waited = asyncio.run(main())
    assert waited, "the second request should have waited on the first one's insert"
    assert second == first
    assert len(_key_rows(database_url, workspace)) == 1


def test_the_private_key_is_stored_encrypted(database_url: str, workspace: WorkspacePublic) -> None:
    key = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))
    (row,) = _key_rows(database_url, workspace)
    stored = bytes(row["private_key_encrypted"])

    der = key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secret_scalar = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    assert b"PRIVATE KEY" not in stored
    assert der not in stored and secret_scalar not in stored
    assert secret_scalar not in row["certificate_pem"].encode()
    assert row["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert row["fingerprint_sha256"] == key.fingerprint_sha256

    # Under another secret key the stored key is unreadable, and says so rather than signing with junk.
    with pytest.raises(SigningKeyUnreadable, match="HALTON_SECRET_KEY"):
        factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=b"x" * 48))


def test_two_workspaces_get_different_keys(database_url: str, workspace: WorkspacePublic) -> None:
    other = factories.make_workspace(database_url, owner=factories.make_user(database_url), name="Globex")
    mine = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))
    theirs = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=other, secret=SECRET))
    assert mine.fingerprint_sha256 != theirs.fingerprint_sha256
    assert mine.private_key.private_numbers() != theirs.private_key.private_numbers()
    assert "Globex" in theirs.certificate.subject.rfc4514_string()


def test_a_signed_report_validates_and_its_hash_is_audited(
    database_url: str, workspace: WorkspacePublic, report_pdf: bytes
) -> None:
    owner = factories.make_user(database_url, email="cfo@example.com")
    signed = _signed(database_url, workspace, report_pdf, actor=Actor.user(owner.id, owner.email))
    key = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))

    # An incremental update: the rendered bytes are untouched, the signature follows them.
    assert signed.startswith(report_pdf)
    check = verify_pdf(signed, key.certificate)
    assert check.ok, check
    assert check.signer == "Acme Robotics (Halton Meter)"
    assert check.certificate_fingerprint == key.fingerprint_sha256
    assert check.signed_at is not None

    # A second reader (poppler) agrees: it sees the field, the signer, and a digest that matches.
    report = pdf_signatures(signed)
    assert "Signature Field Name: HaltonMeterSignature" in report
    assert "Signer Certificate Common Name: Acme Robotics (Halton Meter)" in report
    assert "Signing Time:" in report
    assert "Total document signed" in report
    assert "Signature Validation: Signature is Valid." in report

    page = factories.run(
        database_url, lambda c: audit.list_events(c, workspace_id=workspace.id, q="report.signed")
    )
    (event,) = page.events
    assert event.actor_label == "cfo@example.com"
    assert event.details == {
        "document_sha256": hashlib.sha256(signed).hexdigest(),
        "kind": "executive",
        "period": "2026-05-01/2026-05-31",
        "filters": {"provider": ["anthropic", "openai"], "project": ["acme/app"]},
        "pages": page_count(signed),
        "bytes": len(signed),
        "certificate_fingerprint": key.fingerprint_sha256,
    }
    assert event.resource_id == hashlib.sha256(signed).hexdigest()


def test_changing_one_signed_byte_breaks_the_signature(
    database_url: str, workspace: WorkspacePublic, report_pdf: bytes
) -> None:
    signed = _signed(database_url, workspace, report_pdf)
    key = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))
    signature_starts = signed.index(b"/Contents <") + len(b"/Contents <")
    # One byte inside the first page's content stream: covered by the signature, far from its hex.
    content = signed.index(b"stream\n", signed.index(b"/Length")) + len(b"stream\n") + 40
    assert content < signature_starts
    tampered = bytearray(signed)
    tampered[content] ^= 0x01

    check = verify_pdf(bytes(tampered), key.certificate)
    assert check.signed and not check.intact and not check.ok
    assert "Signature Validation: Digest Mismatch." in pdf_signatures(bytes(tampered))


def test_a_damaged_signature_value_is_reported_not_raised(
    database_url: str, workspace: WorkspacePublic, report_pdf: bytes
) -> None:
    signed = _signed(database_url, workspace, report_pdf)
    key = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))
    hex_starts = signed.index(b"/Contents <") + len(b"/Contents <")
    for offset in (0, 300, 1200):  # the CMS header, the embedded certificate, the signed attributes
        damaged = bytearray(signed)
        damaged[hex_starts + offset] = ord("0") if damaged[hex_starts + offset] != ord("0") else ord("1")
        check = verify_pdf(bytes(damaged), key.certificate)
        assert check.signed and not check.ok, (offset, check)


def test_an_update_appended_after_signing_is_flagged(
    database_url: str, workspace: WorkspacePublic, report_pdf: bytes
) -> None:
    signed = _signed(database_url, workspace, report_pdf)
    key = factories.run(database_url, lambda c: workspace_signing_key(c, workspace=workspace, secret=SECRET))
    # A well-formed incremental update (a changed title) leaves the signed bytes intact, but the document
    # is no longer the one that was signed.
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    info = writer.trailer["/Info"]
    info["/Title"] = generic.TextStringObject("Executive summary (edited)")
    writer.update_container(info)
    edited = io.BytesIO()
    writer.write(edited)

    check = verify_pdf(edited.getvalue(), key.certificate)
    assert check.intact and check.valid
    assert not check.whole_file and not check.ok


def test_only_the_workspaces_own_certificate_is_trusted(
    database_url: str, workspace: WorkspacePublic
) -> None:
    signed = _signed(database_url, workspace, render_pdf_sync("<p>Hello</p>"))
    _, stranger = new_signing_identity("Someone Else")
    check = verify_pdf(signed, stranger)
    assert check.intact and check.valid and not check.trusted and not check.ok


def test_sign_pdf_works_without_the_database() -> None:
    key, certificate = new_signing_identity("Standalone")
    signed = sign_pdf(
        render_pdf_sync("<p>Hello</p>"), key, certificate, reason="test", location="here", name="Standalone"
    )
    assert verify_pdf(signed, certificate).ok


def test_an_unsigned_or_broken_document() -> None:
    assert not verify_pdf(render_pdf_sync("<p>Hello</p>"), new_signing_identity("x")[1]).signed
    with pytest.raises(ValueError, match="not a readable PDF"):
        verify_pdf(b"this is not a PDF", new_signing_identity("x")[1])
