"""Audit events: who (a user, a device, an API key) did what to which resource, and when."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from halton_api.models import AuditEventPublic, AuditPage
from halton_api.store import Connection

ActorType = Literal["user", "device", "api_key", "system"]
# The audit log's event kinds, by event-name prefix.
KINDS: dict[str, tuple[str, ...]] = {
    "membership": ("invitation.", "member."),
    "device": ("device.", "pairing."),
    "config": ("workspace.", "project.", "cost_center.", "budget.", "api_key."),
    "billing": ("billing.", "report.", "export."),
}


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: UUID | None
    label: str

    @classmethod
    def user(cls, user_id: UUID, email: str) -> Actor:
        return cls("user", user_id, email)

    @classmethod
    def device(cls, device_id: UUID, label: str) -> Actor:
        return cls("device", device_id, label)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", None, label)


async def record(
    conn: Connection,
    *,
    workspace_id: UUID,
    actor: Actor,
    event: str,
    resource_type: str,
    resource_id: object = "",
    resource_label: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit event in the caller's transaction."""
    await conn.execute(
        "INSERT INTO audit_events (workspace_id, actor_type, actor_id, actor_label, event, resource_type,"
        " resource_id, resource_label, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            workspace_id,
            actor.type,
            actor.id,
            actor.label,
            event,
            resource_type,
            str(resource_id),
            resource_label,
            Jsonb(details or {}),
        ),
    )


@dataclass(frozen=True)
class EventScope:
    """The rail's filters that mean something for control-plane events: when (`since`/`until`, half-open) and
    which providers (a billing event names its provider in its details, a connection in its resource id)."""

    providers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def _where(
    workspace_id: UUID,
    q: str | None,
    before: int | None,
    kind: str | None = None,
    scope: EventScope = EventScope(),
) -> tuple[str, list[Any]]:
    clauses, params = ["workspace_id = %s"], [workspace_id]
    if scope.providers:
        clauses.append(
            "(details->>'provider' = ANY(%s) OR (resource_type = 'provider_connection' AND resource_id = ANY(%s)))"
        )
        params.extend([list(scope.providers)] * 2)
    if scope.since is not None:
        clauses.append("created_at >= %s")
        params.append(scope.since)
    if scope.until is not None:
        clauses.append("created_at < %s")
        params.append(scope.until)
    if kind is not None:
        clauses.append("event LIKE ANY(%s)")
        params.append([prefix.replace("_", "\\_") + "%" for prefix in KINDS[kind]])
    if before is not None:
        clauses.append("id < %s")
        params.append(before)
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            "(event ILIKE %s OR actor_label ILIKE %s OR resource_type ILIKE %s OR resource_label ILIKE %s"
            " OR resource_id ILIKE %s OR details::text ILIKE %s)"
        )
        params.extend([like] * 6)
    return " AND ".join(clauses), params


async def list_events(
    conn: Connection,
    *,
    workspace_id: UUID,
    q: str | None = None,
    before: int | None = None,
    limit: int = 50,
    kind: str | None = None,
    scope: EventScope = EventScope(),
) -> AuditPage:
    """Newest first; `before` is the id to page back from (keyset paging); `kind` one of `KINDS`."""
    where, params = _where(workspace_id, q, before, kind, scope)
    rows = await (
        await conn.execute(
            f"SELECT * FROM audit_events WHERE {where} ORDER BY id DESC LIMIT %s", [*params, limit + 1]
        )
    ).fetchall()
    events = [AuditEventPublic.model_validate(row) for row in rows[:limit]]
    return AuditPage(events=events, next_before=events[-1].id if len(rows) > limit else None)


async def iter_events(
    conn: Connection,
    *,
    workspace_id: UUID,
    q: str | None = None,
    kind: str | None = None,
    scope: EventScope = EventScope(),
) -> AsyncIterator[AuditEventPublic]:
    """Every matching event, newest first, streamed (for the CSV export)."""
    where, params = _where(workspace_id, q, None, kind, scope)
    async with conn.cursor(name="audit_export") as cursor:
        await cursor.execute(f"SELECT * FROM audit_events WHERE {where} ORDER BY id DESC", params)
        async for row in cursor:
            yield AuditEventPublic.model_validate(row)
