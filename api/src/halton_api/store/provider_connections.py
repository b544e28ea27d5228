"""Provider billing connections as owners manage them on the billing settings page: add (the admin key sealed
with the secret box the pipelines open it with), test, remove; each with its audit event. The key is never
read back to a page: only its prefix and last four characters are kept in the clear."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from halton_api.store import Connection, audit
from halton_api.store.audit import Actor
from halton_meter.secretbox import SecretBoxError, open_provider_key, seal_provider_key

PROVIDER_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "xai": "xAI"}
# What the prefix shows: enough to tell an admin key from a project key, never enough to use it.
PREFIX_LENGTH = 8

_COLUMNS = (
    "provider, key_prefix, key_last4, team_id, created_at, revoked_at, tested_at, test_error,"
    " last_pull_at, last_pull_day, last_pull_error"
)


def fingerprint(row: dict[str, Any]) -> str:
    return f"{row['key_prefix']}…{row['key_last4']}"


async def list_live(conn: Connection, *, workspace_id: UUID) -> list[dict[str, Any]]:
    """The workspace's connections the pulls use, without their keys."""
    return await (
        await conn.execute(
            f"SELECT {_COLUMNS} FROM provider_connections WHERE workspace_id = %s AND revoked_at IS NULL"
            " ORDER BY provider",
            (workspace_id,),
        )
    ).fetchall()


async def add(
    conn: Connection, *, workspace_id: UUID, provider: str, admin_key: str, team_id: str | None,
    secret: bytes, actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """Store (or replace) the workspace's key for `provider`; a replaced key's test and pull status go."""
    row = await (
        await conn.execute(
            "INSERT INTO provider_connections (workspace_id, provider, admin_key_encrypted, key_prefix,"
            " key_last4, team_id, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (workspace_id, provider) DO UPDATE SET admin_key_encrypted = EXCLUDED.admin_key_encrypted,"
            " key_prefix = EXCLUDED.key_prefix, key_last4 = EXCLUDED.key_last4, team_id = EXCLUDED.team_id,"
            " created_by = EXCLUDED.created_by, created_at = now(), revoked_at = NULL, tested_at = NULL,"
            " test_error = NULL, last_pull_at = NULL, last_pull_day = NULL, last_pull_error = NULL"
            f" RETURNING {_COLUMNS}",
            (
                workspace_id, provider, seal_provider_key(secret, admin_key), admin_key[:PREFIX_LENGTH],
                admin_key[-4:], team_id, actor.id if actor.type == "user" else None,
            ),
        )
    ).fetchone()  # fmt: skip
    assert row is not None
    details: dict[str, Any] = {"provider": provider, "key": fingerprint(row)}
    if team_id:
        details["team_id"] = team_id
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor, event="billing.connection_added",
        resource_type="provider_connection", resource_id=provider,
        resource_label=f"{PROVIDER_LABELS[provider]} {fingerprint(row)}", details=details,
    )  # fmt: skip
    return row


async def credentials(
    conn: Connection, *, workspace_id: UUID, provider: str, secret: bytes
) -> tuple[str, str | None] | None:
    """The live key (opened) and xAI team of `provider`, to test the connection; None when there is none."""
    row = await (
        await conn.execute(
            "SELECT admin_key_encrypted, team_id FROM provider_connections"
            " WHERE workspace_id = %s AND provider = %s AND revoked_at IS NULL",
            (workspace_id, provider),
        )
    ).fetchone()
    if row is None:
        return None
    return open_provider_key(secret, row["admin_key_encrypted"]), row["team_id"]


async def unreadable(conn: Connection, *, workspace_id: UUID, secret: bytes) -> set[str]:
    """The providers whose live key does not open with `secret` (the secret changed since the key was saved,
    or the row is damaged): the pages say so, so an owner re-enters the key instead of waiting on pulls
    that cannot run."""
    rows = await (
        await conn.execute(
            "SELECT provider, admin_key_encrypted FROM provider_connections"
            " WHERE workspace_id = %s AND revoked_at IS NULL",
            (workspace_id,),
        )
    ).fetchall()
    broken = set()
    for row in rows:
        try:
            open_provider_key(secret, row["admin_key_encrypted"])
        except SecretBoxError:
            broken.add(row["provider"])
    return broken


async def record_test(
    conn: Connection, *, workspace_id: UUID, provider: str, error: str | None, actor: Actor
) -> None:
    row = await (
        await conn.execute(
            "UPDATE provider_connections SET tested_at = now(), test_error = %s"
            f" WHERE workspace_id = %s AND provider = %s AND revoked_at IS NULL RETURNING {_COLUMNS}",
            (error, workspace_id, provider),
        )
    ).fetchone()
    if row is None:
        return
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor, event="billing.connection_tested",
        resource_type="provider_connection", resource_id=provider,
        resource_label=f"{PROVIDER_LABELS[provider]} {fingerprint(row)}",
        details={"provider": provider, "key": fingerprint(row), "works": error is None,
                 **({"error": error} if error else {})},
    )  # fmt: skip


async def remove(
    conn: Connection, *, workspace_id: UUID, provider: str, actor: Actor
) -> dict[str, Any] | None:
    """Revoke the live key (the row stays, so past pulls keep their source); None when there was none."""
    row = await (
        await conn.execute(
            "UPDATE provider_connections SET revoked_at = now()"
            f" WHERE workspace_id = %s AND provider = %s AND revoked_at IS NULL RETURNING {_COLUMNS}",
            (workspace_id, provider),
        )
    ).fetchone()
    if row is None:
        return None
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor, event="billing.connection_removed",
        resource_type="provider_connection", resource_id=provider,
        resource_label=f"{PROVIDER_LABELS[provider]} {fingerprint(row)}",
        details={"provider": provider, "key": fingerprint(row)},
    )  # fmt: skip
    return row


async def list_project_map(conn: Connection, *, workspace_id: UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            "SELECT m.provider, m.provider_project, p.slug AS project_slug, p.name AS project_name"
            " FROM provider_project_map m JOIN projects p ON p.id = m.project_id"
            " WHERE m.workspace_id = %s ORDER BY m.provider, m.provider_project",
            (workspace_id,),
        )
    ).fetchall()


async def map_project(
    conn: Connection, *, workspace_id: UUID, provider: str, provider_project: str, project_id: UUID | None,
    actor: Actor,
) -> None:  # fmt: skip
    """Say which of our projects a provider project/workspace bills for (`project_id` None: forget it)."""
    if project_id is None:
        await conn.execute(
            "DELETE FROM provider_project_map WHERE workspace_id = %s AND provider = %s AND provider_project = %s",
            (workspace_id, provider, provider_project),
        )
    else:
        await conn.execute(
            "INSERT INTO provider_project_map (workspace_id, provider, provider_project, project_id, created_by)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workspace_id, provider, provider_project)"
            " DO UPDATE SET project_id = EXCLUDED.project_id, created_by = EXCLUDED.created_by, created_at = now()",
            (
                workspace_id,
                provider,
                provider_project,
                project_id,
                actor.id if actor.type == "user" else None,
            ),
        )
    await audit.record(
        conn, workspace_id=workspace_id, actor=actor,
        event="billing.project_mapped" if project_id else "billing.project_unmapped",
        resource_type="provider_project", resource_id=f"{provider}:{provider_project}",
        resource_label=f"{PROVIDER_LABELS[provider]} {provider_project}",
        details={"provider": provider, "provider_project": provider_project,
                 **({"project_id": str(project_id)} if project_id else {})},
    )  # fmt: skip
