"""Workspaces and who belongs to them, with which role."""

from __future__ import annotations

import re
import secrets
import unicodedata
from uuid import UUID

from psycopg import errors

from halton_api.errors import Conflict, Forbidden, NotFound
from halton_api.models import MemberPublic, MembershipPublic, UserPublic, WorkspacePublic
from halton_api.roles import Role
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

# Top-level paths of the app: a workspace slug may not shadow them.
RESERVED_SLUGS = frozenset(
    {
        "v1", "api", "healthz", "openapi", "docs", "redoc", "static", "signin", "signup", "signout",
        "workspaces", "invitations", "connect", "admin", "settings", "app", "www", "login", "logout",
    }
)  # fmt: skip


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:48].strip("-")
    if len(slug) < 2 or slug in RESERVED_SLUGS:
        slug = f"{slug or 'workspace'}-{secrets.token_hex(2)}"
    return slug


async def create_workspace(conn: Connection, *, name: str, owner: UserPublic) -> WorkspacePublic:
    """A new workspace named `name` with `owner` as its first owner; the slug is made unique."""
    base = slugify(name)
    for attempt in range(20):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(2)}"
        try:
            async with conn.transaction():
                row = await (
                    await conn.execute(
                        "INSERT INTO workspaces (slug, name, created_by) VALUES (%s, %s, %s) RETURNING id, slug, name",
                        (slug, name.strip() or slug, owner.id),
                    )
                ).fetchone()
            break
        except errors.UniqueViolation:
            continue
    else:
        raise Conflict(f"could not find a free address for a workspace named {name!r}: try another name")
    workspace = WorkspacePublic.model_validate(row)
    await conn.execute(
        "INSERT INTO memberships (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
        (workspace.id, owner.id),
    )
    await audit.record(
        conn,
        workspace_id=workspace.id,
        actor=Actor.user(owner.id, owner.email),
        event="workspace.created",
        resource_type="workspace",
        resource_id=workspace.id,
        resource_label=workspace.slug,
        details={"name": workspace.name},
    )
    return workspace


async def get_workspace(conn: Connection, *, slug: str) -> WorkspacePublic | None:
    row = await (
        await conn.execute("SELECT id, slug, name FROM workspaces WHERE slug = %s", (slug,))
    ).fetchone()
    return WorkspacePublic.model_validate(row) if row else None


async def get_workspace_by_id(conn: Connection, *, workspace_id: UUID) -> WorkspacePublic:
    row = await (
        await conn.execute("SELECT id, slug, name FROM workspaces WHERE id = %s", (workspace_id,))
    ).fetchone()
    if row is None:
        raise NotFound(f"no workspace with id {workspace_id}")
    return WorkspacePublic.model_validate(row)


async def get_role(conn: Connection, *, workspace_id: UUID, user_id: UUID) -> Role | None:
    row = await (
        await conn.execute(
            "SELECT role FROM memberships WHERE workspace_id = %s AND user_id = %s", (workspace_id, user_id)
        )
    ).fetchone()
    return row["role"] if row else None


async def list_memberships(conn: Connection, *, user_id: UUID) -> list[MembershipPublic]:
    rows = await (
        await conn.execute(
            "SELECT w.id, w.slug, w.name, m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id"
            " WHERE m.user_id = %s ORDER BY w.name, w.slug",
            (user_id,),
        )
    ).fetchall()
    return [MembershipPublic(workspace=WorkspacePublic.model_validate(r), role=r["role"]) for r in rows]


async def list_members(conn: Connection, *, workspace_id: UUID) -> list[MemberPublic]:
    rows = await (
        await conn.execute(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at AS joined_at"
            " FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = %s"
            " ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 WHEN 'member' THEN 2 ELSE 3 END, u.email",
            (workspace_id,),
        )
    ).fetchall()
    return [MemberPublic.model_validate(r) for r in rows]


async def add_member(
    conn: Connection, *, workspace_id: UUID, user: UserPublic, role: Role, actor: Actor, via: str
) -> None:
    """Add `user` with `role`, or leave an existing membership's role as it is (never a silent demotion)."""
    cursor = await conn.execute(
        "INSERT INTO memberships (workspace_id, user_id, role) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (workspace_id, user.id, role),
    )
    if cursor.rowcount:
        await audit.record(
            conn,
            workspace_id=workspace_id,
            actor=actor,
            event="member.added",
            resource_type="member",
            resource_id=user.id,
            resource_label=user.email,
            details={"role": role, "via": via},
        )


async def _locked_member(conn: Connection, workspace_id: UUID, user_id: UUID) -> MemberPublic:
    # Lock every owner row too, so two concurrent demotions cannot both see "another owner remains".
    rows = await (
        await conn.execute(
            "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at AS joined_at"
            " FROM memberships m JOIN users u ON u.id = m.user_id"
            " WHERE m.workspace_id = %s AND (m.user_id = %s OR m.role = 'owner') FOR UPDATE OF m",
            (workspace_id, user_id),
        )
    ).fetchall()
    for row in rows:
        if row["user_id"] == user_id:
            return MemberPublic.model_validate(row)
    raise NotFound("no such member in this workspace")


async def _owners(conn: Connection, workspace_id: UUID) -> int:
    row = await (
        await conn.execute(
            "SELECT count(*) AS n FROM memberships WHERE workspace_id = %s AND role = 'owner'",
            (workspace_id,),
        )
    ).fetchone()
    return row["n"] if row else 0


async def change_role(
    conn: Connection, *, workspace_id: UUID, user_id: UUID, role: Role, actor: Actor, actor_role: Role
) -> MemberPublic:
    """Change a member's role. Only owners grant or take away ownership; the last owner stays an owner."""
    member = await _locked_member(conn, workspace_id, user_id)
    if member.role == role:
        return member
    if (member.role == "owner" or role == "owner") and actor_role != "owner":
        raise Forbidden("only an owner can grant or take away the owner role")
    if member.role == "owner" and await _owners(conn, workspace_id) <= 1:
        raise Conflict("this is the workspace's last owner: make someone else an owner first")
    await conn.execute(
        "UPDATE memberships SET role = %s WHERE workspace_id = %s AND user_id = %s",
        (role, workspace_id, user_id),
    )
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="member.role_changed",
        resource_type="member",
        resource_id=user_id,
        resource_label=member.email,
        details={"from": member.role, "to": role},
    )
    return member.model_copy(update={"role": role})


async def remove_member(
    conn: Connection, *, workspace_id: UUID, user_id: UUID, actor: Actor, actor_role: Role
) -> None:
    member = await _locked_member(conn, workspace_id, user_id)
    if member.role == "owner" and actor_role != "owner":
        raise Forbidden("only an owner can remove an owner")
    if member.role == "owner" and await _owners(conn, workspace_id) <= 1:
        raise Conflict("this is the workspace's last owner: make someone else an owner first")
    await conn.execute(
        "DELETE FROM memberships WHERE workspace_id = %s AND user_id = %s", (workspace_id, user_id)
    )
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="member.removed",
        resource_type="member",
        resource_id=user_id,
        resource_label=member.email,
        details={"role": member.role},
    )
