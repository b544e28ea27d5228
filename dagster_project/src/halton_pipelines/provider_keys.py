"""Provider admin keys, stored encrypted in the control plane, decrypted only to call a billing API.

The control plane keeps one row per workspace and provider in `provider_connections` (the API's migrations
0003 and 0014): the admin key sealed with `halton_meter.secretbox` (the derivation the API uses when an owner
saves a key on the settings page), its prefix and last four characters to show, for xAI the team id, and the
status of the last pull, which the pipelines write back here for the settings and reconciliation pages. A
key that does not decrypt (secret rotated, row corrupted) is reported for its workspace, never silently
skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import psycopg

from halton_meter.secretbox import SecretBoxError, open_provider_key

log = logging.getLogger(__name__)

BILLING_PROVIDERS = ("anthropic", "openai", "xai")


@dataclass(frozen=True)
class ProviderConnection:
    workspace_id: UUID
    provider: str
    admin_key: str
    key_prefix: str
    team_id: str | None = None


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
            key = open_provider_key(secret, token)
        except SecretBoxError as error:
            problems.append(f"workspace {workspace_id} ({provider} key {prefix}…): {error}")
            continue
        connections.append(ProviderConnection(workspace_id, provider, key, prefix, team_id))
    return connections, problems


def record_pull(database_url: str, workspace_id: UUID, provider: str, day: date, error: str | None) -> None:
    """The outcome of pulling `day` for one connection, shown on the settings and reconciliation pages."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE provider_connections SET last_pull_at = now(), last_pull_day = %s, last_pull_error = %s"
            " WHERE workspace_id = %s AND provider = %s AND revoked_at IS NULL",
            (day, error, workspace_id, provider),
        )
