"""Workspace API keys (`hm_key_…`): read access to one workspace's JSON API, stored as a hash."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from halton_api import tokens
from halton_api.errors import Conflict, NotFound
from halton_api.models import ApiKeyCreated, ApiKeyPublic
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

_SELECT = (
    "SELECT k.id, k.name, k.key_prefix, k.created_at, u.email AS created_by_email, k.last_used_at, k.revoked_at"
    " FROM api_keys k LEFT JOIN users u ON u.id = k.created_by"
)


@dataclass(frozen=True)
class ApiKeyAuth:
    key_id: UUID
    workspace_id: UUID
    name: str
    key_prefix: str


async def create_api_key(conn: Connection, *, workspace_id: UUID, name: str, actor: Actor) -> ApiKeyCreated:
    key = tokens.mint(tokens.API_KEY_PREFIX)
    row = await (
        await conn.execute(
            "INSERT INTO api_keys (workspace_id, name, key_hash, key_prefix, created_by)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (workspace_id, name.strip(), tokens.digest(key), tokens.shown_prefix(key), actor.id),
        )
    ).fetchone()
    assert row is not None
    api_key = await _get(conn, workspace_id, row["id"])
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="api_key.created",
        resource_type="api_key",
        resource_id=api_key.id,
        resource_label=f"{api_key.name} ({api_key.key_prefix}…)",
    )
    return ApiKeyCreated(api_key=api_key, key=key)


async def _get(conn: Connection, workspace_id: UUID, key_id: UUID) -> ApiKeyPublic:
    row = await (
        await conn.execute(f"{_SELECT} WHERE k.workspace_id = %s AND k.id = %s", (workspace_id, key_id))
    ).fetchone()
    if row is None:
        raise NotFound("no such API key in this workspace")
    return ApiKeyPublic.model_validate(row)


async def list_api_keys(conn: Connection, *, workspace_id: UUID) -> list[ApiKeyPublic]:
    rows = await (
        await conn.execute(
            f"{_SELECT} WHERE k.workspace_id = %s ORDER BY k.revoked_at IS NOT NULL, k.created_at DESC",
            (workspace_id,),
        )
    ).fetchall()
    return [ApiKeyPublic.model_validate(r) for r in rows]


async def revoke_api_key(conn: Connection, *, workspace_id: UUID, key_id: UUID, actor: Actor) -> ApiKeyPublic:
    api_key = await _get(conn, workspace_id, key_id)
    if api_key.revoked_at is not None:
        raise Conflict("this API key is already revoked")
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key_id,))
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="api_key.revoked",
        resource_type="api_key",
        resource_id=key_id,
        resource_label=f"{api_key.name} ({api_key.key_prefix}…)",
    )
    return await _get(conn, workspace_id, key_id)


async def authenticate(conn: Connection, *, key: str) -> ApiKeyAuth | None:
    """The live key `key` names, or None (unknown, malformed or revoked)."""
    if not tokens.well_formed(key, tokens.API_KEY_PREFIX):
        return None
    row = await (
        await conn.execute(
            "SELECT id, workspace_id, name, key_prefix FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
            (tokens.digest(key),),
        )
    ).fetchone()
    if row is not None:
        # At most one write a minute per key: reads should not each leave a row version behind.
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = %s"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            (row["id"],),
        )
    if row is None:
        return None
    return ApiKeyAuth(
        key_id=row["id"], workspace_id=row["workspace_id"], name=row["name"], key_prefix=row["key_prefix"]
    )
