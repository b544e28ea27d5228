"""The meter's certificate authority: created once by ``init``, checked by ``doctor``, shown by ``ca``.

The files are mitmproxy's (its confdir is the meter's home), so the proxy signs leaf certificates for
provider hosts with exactly this CA. ``ca-bundle.pem`` is the public roots plus this CA: tools whose
CA variable *replaces* the trust store (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``) need it, otherwise
every non-provider HTTPS call through the proxy (tunnelled, with its real certificate) would fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from halton_meter.paths import CA_BASENAME, MeterPaths

logger = logging.getLogger(__name__)

CA_ORGANIZATION = "Halton Meter"
CA_COMMON_NAME = "Halton Meter local CA"
KEY_SIZE = 2048


class CaProblem(RuntimeError):
    """The CA is missing or unusable; the message says what to do."""


@dataclass(frozen=True)
class CaInfo:
    cert_path: Path
    bundle_path: Path
    subject: str
    sha256: str
    not_before: datetime
    not_after: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "cert": str(self.cert_path),
            "bundle": str(self.bundle_path),
            "subject": self.subject,
            "sha256": self.sha256,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


def ensure_ca(paths: MeterPaths) -> tuple[CaInfo, bool]:
    """Create the CA if there is none (keeping an existing one), refresh the bundle; (info, created)."""
    created = False
    if not paths.ca_key.exists():
        from mitmproxy.certs import CertStore  # heavy import, only when a CA is really made

        CertStore.create_store(
            paths.home, CA_BASENAME, KEY_SIZE, organization=CA_ORGANIZATION, cn=CA_COMMON_NAME
        )
        created = True
        logger.info("created CA in %s", paths.home)
    write_bundle(paths)
    return inspect_ca(paths), created


def write_bundle(paths: MeterPaths) -> Path:
    roots = Path(certifi.where()).read_bytes()
    ours = paths.ca_cert.read_bytes()
    paths.ca_bundle.write_bytes(roots.rstrip(b"\n") + b"\n\n# Halton Meter local CA\n" + ours)
    return paths.ca_bundle


def inspect_ca(paths: MeterPaths) -> CaInfo:
    """Load and check the CA: present, a CA, currently valid, and its key matches its certificate."""
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        raise CaProblem(f"no CA in {paths.home}: run `halton-meter init`")
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CaProblem(
            f"the CA files in {paths.home} do not load ({exc}); move them away and run `halton-meter init`"
        ) from exc
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CaProblem(f"{paths.ca_cert} is not a CA certificate")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CaProblem(f"{paths.ca_key} does not hold the key of {paths.ca_cert}")
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CaProblem(
            f"the CA expired on {cert.not_valid_after_utc:%Y-%m-%d}: move the CA files away and run `halton-meter init`, then trust the new one"
        )
    return CaInfo(
        cert_path=paths.ca_cert,
        bundle_path=paths.ca_bundle,
        subject=cert.subject.rfc4514_string(),
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
