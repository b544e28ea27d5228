"""Signed PDF reports: a per-workspace key and certificate, a PAdES signature any reader shows, its check.

Each workspace signs with its own ECDSA P-256 key and a self-signed certificate named after it, made the
first time the workspace signs a report and kept in `signing_keys` (the private key encrypted). The
signature is a certification signature (DocMDP "no changes allowed") in an invisible field, added as an
incremental update: readers list it in their signature panel, and changing any signed byte breaks it.
Nobody's trust store knows a workspace's certificate, so a reader reports the signer as unknown until
the certificate is trusted: members download it from the advanced settings page (`routers/verify.py`) to
give to readers. `verify_pdf` is the check that trusts exactly the workspace's certificates.

pyHanko's synchronous entry points run their own event loop: from async code call `sign_pdf` and
`verify_pdf` in a worker thread (`sign_report` does).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import anyio.to_thread
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from halton_api.models import WorkspacePublic
from halton_api.store import Connection, audit, signing_keys
from halton_api.store.audit import Actor

log = logging.getLogger(__name__)

SIGNATURE_FIELD = "HaltonMeterSignature"
# Long enough to outlive any report's useful life; a workspace gets a new key only when one is retired.
CERTIFICATE_VALIDITY = timedelta(days=10 * 365)

ReportKind = Literal["project", "executive"]


@dataclass(frozen=True)
class SigningKey:
    """A workspace's key, decrypted and ready to sign with."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate
    fingerprint_sha256: str
    created_at: datetime


@dataclass(frozen=True)
class SignatureCheck:
    """What validating a document's signature against a trusted certificate found."""

    signed: bool
    # The signed bytes hash to the digest the signature carries.
    intact: bool = False
    # The signature over that digest verifies with the certificate's public key.
    valid: bool = False
    # The certificate is one we were told to trust (the workspace's).
    trusted: bool = False
    # Nothing was appended after signing: the signature covers the file, byte for byte.
    whole_file: bool = False
    signer: str | None = None
    signed_at: datetime | None = None
    certificate_fingerprint: str | None = None
    # Why the signature could not even be evaluated (a damaged signature value), if so.
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.valid and self.trusted and self.whole_file


@dataclass(frozen=True)
class SignedReport:
    """What a signed report is about, as written to the audit log next to its hash."""

    kind: ReportKind
    title: str
    period_start: date
    period_end: date
    filters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def period(self) -> str:
        # An ISO 8601 interval: one string that sorts and reads the same everywhere.
        return f"{self.period_start.isoformat()}/{self.period_end.isoformat()}"


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def new_signing_identity(workspace_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh P-256 key and a self-signed certificate for it, naming the workspace."""
    key = ec.generate_private_key(ec.SECP256R1())
    # X.509 caps a CN at 64 characters and an O at 64; workspace names are free text.
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{workspace_name[:47]} (Halton Meter)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, workspace_name[:64]),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack, so a reader whose clock runs behind ours does not see a not-yet-valid certificate.
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + CERTIFICATE_VALIDITY)
        # Marked as a CA that can issue nothing below it (path length 0): NSS-based readers (poppler's
        # `pdfsig`, Firefox, Evince) accept a certificate as a trust anchor only if it is a CA, and would
        # otherwise never trust the signature however the reader adds the certificate. Whoever holds the key
        # can sign any PDF as the workspace anyway; being a CA lets it vouch for nothing more.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # nonRepudiation
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,  # a CA's own self-signature, as NSS checks it
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _from_stored(stored: signing_keys.StoredSigningKey) -> SigningKey:
    private_key = serialization.load_pem_private_key(stored.private_key_pem, password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return SigningKey(
        private_key=private_key,
        certificate=x509.load_pem_x509_certificate(stored.certificate_pem.encode()),
        fingerprint_sha256=stored.fingerprint_sha256,
        created_at=stored.created_at,
    )


async def workspace_signing_key(conn: Connection, *, workspace: WorkspacePublic, secret: bytes) -> SigningKey:
    """The workspace's signing key, made and stored on first use (race-free: concurrent first uses agree)."""
    cipher = signing_keys.signing_key_cipher(secret)
    stored = await signing_keys.get_live_signing_key(conn, workspace_id=workspace.id, cipher=cipher)
    if stored is None:
        key, certificate = new_signing_identity(workspace.name)
        await signing_keys.insert_signing_key_if_absent(
            conn,
            workspace_id=workspace.id,
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            fingerprint_sha256=fingerprint(certificate),
            cipher=cipher,
        )
        # Read back rather than use ours: if another request stored its key first, that one is the key.
        stored = await signing_keys.get_live_signing_key(conn, workspace_id=workspace.id, cipher=cipher)
        assert stored is not None
    return _from_stored(stored)


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def sign_pdf(
    pdf_bytes: bytes,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    *,
    reason: str,
    location: str,
    name: str,
) -> bytes:
    """`pdf_bytes` with a PAdES (B-B) certification signature appended as an incremental update.

    Blocking (and it runs an event loop of its own): from async code, call it in a worker thread.
    """
    signing_cert = _asn1_certificate(cert)
    signer = signers.SimpleSigner(
        signing_cert=signing_cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
        # No chain to add: the signer's own certificate is embedded anyway (listing it here embeds it twice).
        cert_registry=SimpleCertificateStore(),
    )
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        reason=reason,
        location=location,
        name=name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        # A certification signature that allows no later change: a reader flags even an otherwise
        # well-formed incremental update (a new annotation, a second signature) as breaking it.
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes))
    output = signers.sign_pdf(writer, metadata, signer=signer)
    return output.getvalue()


def verify_pdf(
    pdf_bytes: bytes, trusted_cert: x509.Certificate | Sequence[x509.Certificate]
) -> SignatureCheck:
    """Validate the document's signature, trusting exactly `trusted_cert` (one certificate or several, e.g.
    a workspace's live and retired ones). Raises ValueError if the bytes are not a readable PDF.

    Blocking (and it runs an event loop of its own): from async code, call it in a worker thread.
    """
    trusted = [trusted_cert] if isinstance(trusted_cert, x509.Certificate) else list(trusted_cert)
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
        embedded = reader.embedded_signatures
    except PdfReadError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from exc
    except ValueError as exc:
        # A signature field whose value no longer parses as CMS: signed once, broken since.
        return SignatureCheck(signed=True, problem=str(exc))
    if not embedded:
        return SignatureCheck(signed=False)
    signature = embedded[0]
    context = ValidationContext(
        trust_roots=[_asn1_certificate(c) for c in trusted],
        # Self-signed workspace certificates have no CRL or OCSP responder; never reach out to the network.
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    try:
        status = validate_pdf_signature(signature, context)
    except ValueError as exc:  # SignatureValidationError among them
        # The signature value itself is damaged (its certificate or signed attributes no longer parse or
        # match): that is a broken signature, not an error of ours.
        return SignatureCheck(signed=True, problem=str(exc))
    signer_cert = signature.signer_cert
    return SignatureCheck(
        signed=True,
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        signer=signer_cert.subject.native.get("common_name"),
        signed_at=status.signer_reported_dt,
        certificate_fingerprint=signer_cert.sha256.hex(),
    )


def _page_count(pdf_bytes: bytes) -> int:
    return int(PdfFileReader(io.BytesIO(pdf_bytes), strict=False).root["/Pages"]["/Count"])


async def sign_report(
    conn: Connection,
    *,
    workspace: WorkspacePublic,
    secret: bytes,
    pdf_bytes: bytes,
    report: SignedReport,
    actor: Actor,
    location: str,
) -> bytes:
    """Sign a rendered report with the workspace's key and write `report.signed` with the SHA-256 of the
    returned bytes, in one transaction with making the key (on first use): both happen, or neither.

    `secret` is `settings.secret()`; `location` is where it was signed, e.g. the cloud's public host name.
    """
    async with conn.transaction():
        key = await workspace_signing_key(conn, workspace=workspace, secret=secret)
        signed = await anyio.to_thread.run_sync(
            lambda: sign_pdf(
                pdf_bytes,
                key.private_key,
                key.certificate,
                reason=f"{report.title}, {report.period}: as metered by Halton Meter",
                location=location,
                name=f"{workspace.name} (Halton Meter)",
            )
        )
        document_sha256 = hashlib.sha256(signed).hexdigest()
        pages = _page_count(signed)
        await audit.record(
            conn,
            workspace_id=workspace.id,
            actor=actor,
            event="report.signed",
            resource_type="report",
            resource_id=document_sha256,
            resource_label=f"{report.title} ({report.period})",
            details={
                "document_sha256": document_sha256,
                "kind": report.kind,
                "period": report.period,
                # Dates, decimals and ids as their text, so any filter value fits in the JSON column.
                "filters": json.loads(json.dumps(dict(report.filters), default=str)),
                "pages": pages,
                "bytes": len(signed),
                "certificate_fingerprint": key.fingerprint_sha256,
            },
        )
    log.info(
        "signed %s report for workspace %s: %d pages, %d bytes, sha256 %s",
        report.kind,
        workspace.slug,
        pages,
        len(signed),
        document_sha256,
    )
    return signed
