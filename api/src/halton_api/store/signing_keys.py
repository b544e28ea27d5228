"""Workspace keys for signing PDF reports: the private key encrypted at rest, the certificate in clear.

This module stores and reads keys as PEM; making them and signing with them is `halton_api.pdf.signing`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken

from halton_api.store import Connection
from halton_meter.secretbox import fernet_for

log = logging.getLogger(__name__)

# The secretbox purpose label: a signing-key ciphertext can only be decrypted as a signing key.
CIPHER_PURPOSE = "pdf-signing-key"


class SigningKeyUnreadable(RuntimeError):
    """The stored key cannot be decrypted with the current secret key."""


def signing_key_cipher(secret: bytes) -> Fernet:
    """The Fernet key for signing keys, from the cloud's secret (`settings.secret()`)."""
    return fernet_for(secret, CIPHER_PURPOSE)


@dataclass(frozen=True)
class StoredSigningKey:
    id: UUID
    workspace_id: UUID
    private_key_pem: bytes = field(repr=False)
    certificate_pem: str
    fingerprint_sha256: str
    created_at: datetime


async def get_live_signing_key(
    conn: Connection, *, workspace_id: UUID, cipher: Fernet
) -> StoredSigningKey | None:
    """The workspace's current signing key, decrypted, or None before its first signed report."""
    row = await (
        await conn.execute(
            "SELECT id, workspace_id, private_key_encrypted, certificate_pem, fingerprint_sha256, created_at"
            " FROM signing_keys WHERE workspace_id = %s AND retired_at IS NULL",
            (workspace_id,),
        )
    ).fetchone()
    if row is None:
        return None
    try:
        private_key_pem = cipher.decrypt(bytes(row["private_key_encrypted"]))
    except InvalidToken as exc:
        raise SigningKeyUnreadable(
            f"the PDF signing key of workspace {workspace_id} (certificate {row['fingerprint_sha256'][:16]}…) "
            "cannot be decrypted: HALTON_SECRET_KEY is not the one it was stored with. Restore that secret key "
            "to keep signing with this certificate"
        ) from exc
    return StoredSigningKey(
        id=row["id"],
        workspace_id=row["workspace_id"],
        private_key_pem=private_key_pem,
        certificate_pem=row["certificate_pem"],
        fingerprint_sha256=row["fingerprint_sha256"],
        created_at=row["created_at"],
    )


async def insert_signing_key_if_absent(
    conn: Connection,
    *,
    workspace_id: UUID,
    private_key_pem: bytes,
    certificate_pem: str,
    fingerprint_sha256: str,
    cipher: Fernet,
) -> bool:
    """Store a new live key unless the workspace already has one; True if this one was stored.

    Two requests racing to make the first key both get here: the unique index on the live key makes the
    second insert wait for the first transaction and then do nothing, and both go on to read the winner.
    """
    inserted = await (
        await conn.execute(
            "INSERT INTO signing_keys (workspace_id, private_key_encrypted, certificate_pem, fingerprint_sha256)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (workspace_id) WHERE retired_at IS NULL DO NOTHING RETURNING id",
            (workspace_id, cipher.encrypt(private_key_pem), certificate_pem, fingerprint_sha256),
        )
    ).fetchone()
    if inserted is not None:
        log.info("created PDF signing key %s for workspace %s", fingerprint_sha256[:16], workspace_id)
    return inserted is not None


async def list_certificates(conn: Connection, *, workspace_id: UUID) -> list[str]:
    """Every certificate the workspace has signed with (live and retired), newest first, as PEM."""
    rows = await (
        await conn.execute(
            "SELECT certificate_pem FROM signing_keys WHERE workspace_id = %s ORDER BY created_at DESC",
            (workspace_id,),
        )
    ).fetchall()
    return [row["certificate_pem"] for row in rows]


@dataclass(frozen=True)
class WorkspaceCertificate:
    """A certificate the workspace signs (or signed) its reports with: what a reader is asked to trust."""

    certificate_pem: str
    fingerprint_sha256: str
    created_at: datetime
    retired_at: datetime | None


async def workspace_certificates(conn: Connection, *, workspace_id: UUID) -> list[WorkspaceCertificate]:
    """Every certificate the workspace has signed with, the live one first, then retired ones newest first."""
    rows = await (
        await conn.execute(
            "SELECT certificate_pem, fingerprint_sha256, created_at, retired_at FROM signing_keys"
            " WHERE workspace_id = %s ORDER BY retired_at IS NOT NULL, created_at DESC",
            (workspace_id,),
        )
    ).fetchall()
    return [WorkspaceCertificate(**row) for row in rows]
