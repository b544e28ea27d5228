"""Invitations: a link with a single-use token that lets one email address join a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from halton_api import tokens
from halton_api.errors import Conflict, Forbidden, NotFound
from halton_api.models import InvitationPublic, UserPublic, WorkspacePublic
from halton_api.roles import Role
from halton_api.store import Connection, audit, workspaces
from halton_api.store.audit import Actor

_SELECT = (
    "SELECT i.id, i.email, i.role, i.token_prefix, i.created_at, i.expires_at, i.accepted_at, i.revoked_at,"
    " u.email AS invited_by_email FROM invitations i LEFT JOIN users u ON u.id = i.invited_by"
)


@dataclass(frozen=True)
class OpenInvitation:
    invitation: InvitationPublic
    workspace: WorkspacePublic


async def create_invitation(
    conn: Connection, *, workspace_id: UUID, email: str, role: Role, ttl: timedelta, actor: Actor
) -> tuple[InvitationPublic, str]:
    """A pending invitation and its raw token (shown once, inside the link)."""
    token = tokens.mint(tokens.INVITATION_PREFIX)
    row = await (
        await conn.execute(
            "INSERT INTO invitations (workspace_id, email, role, token_hash, token_prefix, invited_by, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, now() + %s) RETURNING id",
            (
                workspace_id,
                email.strip(),
                role,
                tokens.digest(token),
                tokens.shown_prefix(token),
                actor.id,
                ttl,
            ),
        )
    ).fetchone()
    assert row is not None
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="invitation.sent",
        resource_type="invitation",
        resource_id=row["id"],
        resource_label=email,
        details={"role": role},
    )
    return await _get(conn, workspace_id, row["id"]), token


async def _get(conn: Connection, workspace_id: UUID, invitation_id: UUID) -> InvitationPublic:
    row = await (
        await conn.execute(
            f"{_SELECT} WHERE i.workspace_id = %s AND i.id = %s", (workspace_id, invitation_id)
        )
    ).fetchone()
    if row is None:
        raise NotFound("no such invitation in this workspace")
    return InvitationPublic.model_validate(row)


async def list_invitations(conn: Connection, *, workspace_id: UUID) -> list[InvitationPublic]:
    rows = await (
        await conn.execute(
            f"{_SELECT} WHERE i.workspace_id = %s ORDER BY i.created_at DESC LIMIT 200", (workspace_id,)
        )
    ).fetchall()
    return [InvitationPublic.model_validate(r) for r in rows]


async def revoke_invitation(
    conn: Connection, *, workspace_id: UUID, invitation_id: UUID, actor: Actor
) -> None:
    invitation = await _get(conn, workspace_id, invitation_id)
    if invitation.state != "pending":
        raise Conflict(f"this invitation is already {invitation.state}")
    await conn.execute("UPDATE invitations SET revoked_at = now() WHERE id = %s", (invitation_id,))
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="invitation.revoked",
        resource_type="invitation",
        resource_id=invitation_id,
        resource_label=invitation.email,
    )


async def find_invitation(conn: Connection, *, token: str) -> OpenInvitation | None:
    """The invitation a link names, whatever its state, or None for an unknown token."""
    if not tokens.well_formed(token, tokens.INVITATION_PREFIX):
        return None
    row = await (
        await conn.execute(
            f"{_SELECT.replace('SELECT ', 'SELECT w.id AS workspace_id, w.slug, w.name, ', 1)}"
            " JOIN workspaces w ON w.id = i.workspace_id WHERE i.token_hash = %s",
            (tokens.digest(token),),
        )
    ).fetchone()
    if row is None:
        return None
    workspace = WorkspacePublic(id=row["workspace_id"], slug=row["slug"], name=row["name"])
    return OpenInvitation(InvitationPublic.model_validate(row), workspace)


async def accept_invitation(conn: Connection, *, token: str, user: UserPublic) -> WorkspacePublic:
    """Join the invitation's workspace as `user`; the invitation must be pending and for their email."""
    found = await find_invitation(conn, token=token)
    if found is None:
        raise NotFound("this invitation link is not valid: ask for a new one")
    # Lock the row so two clicks cannot both accept it.
    await conn.execute("SELECT 1 FROM invitations WHERE id = %s FOR UPDATE", (found.invitation.id,))
    found = await find_invitation(conn, token=token)
    assert found is not None
    invitation = found.invitation
    if invitation.state != "pending":
        raise Conflict(f"this invitation is {invitation.state}: ask a workspace admin for a new one")
    if invitation.email.lower() != user.email.lower():
        raise Forbidden(
            f"this invitation is for {invitation.email}, but you are signed in as {user.email}: "
            "sign in with the invited address"
        )
    await conn.execute(
        "UPDATE invitations SET accepted_at = now(), accepted_by = %s WHERE id = %s", (user.id, invitation.id)
    )
    actor = Actor.user(user.id, user.email)
    await audit.record(
        conn,
        workspace_id=found.workspace.id,
        actor=actor,
        event="invitation.accepted",
        resource_type="invitation",
        resource_id=invitation.id,
        resource_label=invitation.email,
        details={"role": invitation.role},
    )
    await workspaces.add_member(
        conn, workspace_id=found.workspace.id, user=user, role=invitation.role, actor=actor, via="invitation"
    )
    return found.workspace
