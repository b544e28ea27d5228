"""A workspace's branding for its reports (today: the logo), one row per workspace that has one."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredLogo:
    content_type: str
    data: bytes = field(repr=False)
    sha256: str
    updated_at: datetime
    updated_by_email: str | None

    @property
    def size(self) -> int:
        return len(self.data)


async def get_logo(conn: Connection, *, workspace_id: UUID) -> StoredLogo | None:
    row = await (
        await conn.execute(
            "SELECT b.logo, b.logo_content_type, b.logo_sha256, b.updated_at, u.email"
            " FROM workspace_branding b LEFT JOIN users u ON u.id = b.updated_by WHERE b.workspace_id = %s",
            (workspace_id,),
        )
    ).fetchone()
    if row is None:
        return None
    return StoredLogo(
        content_type=row["logo_content_type"],
        data=bytes(row["logo"]),
        sha256=row["logo_sha256"],
        updated_at=row["updated_at"],
        updated_by_email=row["email"],
    )


async def set_logo(
    conn: Connection, *, workspace_id: UUID, data: bytes, content_type: str, actor: Actor
) -> str:
    """Store (or replace) the workspace's logo, already validated (`pdf.logo.validate_logo`); its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    await conn.execute(
        "INSERT INTO workspace_branding (workspace_id, logo, logo_content_type, logo_sha256, updated_by)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workspace_id) DO UPDATE SET logo = EXCLUDED.logo,"
        " logo_content_type = EXCLUDED.logo_content_type, logo_sha256 = EXCLUDED.logo_sha256,"
        " updated_at = now(), updated_by = EXCLUDED.updated_by",
        (workspace_id, data, content_type, digest, actor.id if actor.type == "user" else None),
    )
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="workspace.logo_updated",
        resource_type="workspace",
        resource_id=workspace_id,
        resource_label="logo",
        details={"content_type": content_type, "bytes": len(data), "sha256": digest},
    )
    log.info("workspace %s logo set (%s, %d bytes)", workspace_id, content_type, len(data))
    return digest


async def remove_logo(conn: Connection, *, workspace_id: UUID, actor: Actor) -> bool:
    """Remove the logo; False if there was none (nothing is audited then)."""
    removed = await (
        await conn.execute(
            "DELETE FROM workspace_branding WHERE workspace_id = %s RETURNING logo_sha256", (workspace_id,)
        )
    ).fetchone()
    if removed is None:
        return False
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="workspace.logo_removed",
        resource_type="workspace",
        resource_id=workspace_id,
        resource_label="logo",
        details={"sha256": removed["logo_sha256"]},
    )
    return True
