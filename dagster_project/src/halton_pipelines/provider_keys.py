"""Provider admin keys, stored encrypted in the control plane, decrypted only to call a billing API.

The control plane keeps one row per workspace and provider in `provider_connections` (see
`CONTROL_PLANE_TABLE`): the admin key as a Fernet token, its prefix to show, and for xAI the team id. The
Fernet key is derived from the cloud secret (`HALTON_SECRET_KEY`) with HKDF-SHA256 and the info string
`FERNET_INFO`, so the API (which encrypts when a person saves a key) and Dagster (which decrypts to pull
billing) agree without sharing anything but the secret. A key that does not decrypt (secret rotated, row
corrupted) is reported for its workspace, never silently skipped.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from uuid import UUID

import psycopg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

FERNET_INFO = b"halton provider connections v1"
BILLING_PROVIDERS = ("anthropic", "openai", "xai")

# The table the control plane is expected to hold (owned by the API's migrations).
CONTROL_PLANE_TABLE = """
CREATE TABLE provider_connections (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id        uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    provider            text NOT NULL CHECK (provider IN ('anthropic', 'openai', 'xai')),
    admin_key_encrypted bytea NOT NULL,
    key_prefix          text NOT NULL,
    team_id             text,
    created_by          uuid REFERENCES users ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    UNIQUE (workspace_id, provider)
)
"""


class ProviderKeyError(RuntimeError):
    """A stored provider key cannot be used."""


@dataclass(frozen=True)
class ProviderConnection:
    workspace_id: UUID
    provider: str
    admin_key: str
    key_prefix: str
    team_id: str | None = None


def fernet(secret: str | bytes) -> Fernet:
    """The Fernet that encrypts provider keys, derived from the cloud secret."""
    material = secret.encode() if isinstance(secret, str) else secret
    if not material:
        raise ProviderKeyError("HALTON_SECRET_KEY is empty: provider keys cannot be decrypted without it")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=FERNET_INFO).derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_admin_key(secret: str | bytes, admin_key: str) -> bytes:
    return fernet(secret).encrypt(admin_key.encode())


def decrypt_admin_key(secret: str | bytes, token: bytes) -> str:
    try:
        return fernet(secret).decrypt(bytes(token)).decode()
    except InvalidToken as error:
        raise ProviderKeyError(
            "a stored provider key does not decrypt with HALTON_SECRET_KEY (was the secret rotated?): "
            "save the key again in the workspace's settings"
        ) from error


def load_connections(
    database_url: str, secret: str, provider: str
) -> tuple[list[ProviderConnection], list[str]]:
    """Active connections for `provider`, decrypted; and one problem message per connection that failed."""
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('provider_connections') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            log.info(
                "the control plane has no provider_connections table yet: no %s billing to pull", provider
            )
            return [], []
        rows = conn.execute(
            "SELECT workspace_id, admin_key_encrypted, key_prefix, team_id FROM provider_connections "
            "WHERE provider = %s AND revoked_at IS NULL ORDER BY workspace_id",
            (provider,),
        ).fetchall()
    connections: list[ProviderConnection] = []
    problems: list[str] = []
    for workspace_id, token, prefix, team_id in rows:
        try:
            key = decrypt_admin_key(secret, token)
        except ProviderKeyError as error:
            problems.append(f"workspace {workspace_id} ({provider} key {prefix}…): {error}")
            continue
        connections.append(ProviderConnection(workspace_id, provider, key, prefix, team_id))
    return connections, problems
