"""Runaway spend in the control plane: the anomalies the pipelines raised (halton_pipelines.alerts.anomalies)
with their evidence and each delivery's status, as the overview card and the JSON API read them, and closing one
(acknowledged by an owner or config manager, with an optional note, audited; its deliveries not made yet are
cancelled, so no one is paged about an anomaly already dealt with)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from halton_api.errors import Conflict, NotFound
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor
from halton_api.store.budget_alerts import DeliveryPublic


class SpendAnomalyPublic(BaseModel):
    id: UUID
    kind: str  # loop or spike
    subject_kind: str  # prompt, project or device
    subject: str
    status: str
    message: str
    evidence: dict[str, Any]  # the spike and its baseline, or the loop's calls; devices; the window
    raised_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    close_note: str | None
    deliveries: list[DeliveryPublic]


async def list_anomalies(
    conn: Connection,
    *,
    workspace_id: UUID,
    status: str | None = "open",
    limit: int = 100,
    anomaly_id: UUID | None = None,
) -> list[SpendAnomalyPublic]:
    rows = await (
        await conn.execute(
            "SELECT s.id, s.kind, s.subject_kind, s.subject, s.status, s.message, s.evidence, s.raised_at,"
            " s.closed_at, s.closed_by, s.close_note,"
            " coalesce(json_agg(json_build_object('channel', d.channel, 'status', d.status, 'attempts', d.attempts,"
            "   'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,"
            "   'last_error', d.last_error, 'delivered_at', d.delivered_at) ORDER BY d.channel)"
            "   FILTER (WHERE d.id IS NOT NULL), '[]') AS deliveries"
            " FROM spend_anomalies s LEFT JOIN alert_deliveries d ON d.anomaly_id = s.id"
            " WHERE s.workspace_id = %s AND (%s::text IS NULL OR s.status = %s)"
            " AND (%s::uuid IS NULL OR s.id = %s)"
            " GROUP BY s.id ORDER BY s.raised_at DESC, s.kind LIMIT %s",
            (workspace_id, status, status, anomaly_id, anomaly_id, limit),
        )
    ).fetchall()
    return [SpendAnomalyPublic.model_validate(dict(r)) for r in rows]


async def close_anomaly(
    conn: Connection, *, workspace_id: UUID, anomaly_id: UUID, note: str, actor: Actor
) -> SpendAnomalyPublic:
    """Close an open anomaly: it leaves the overview, and as its row stays (with its key), the pipelines do not
    raise it again for the same window. Its deliveries still pending (not tried yet, or waiting for a retry) are
    cancelled in the same transaction: the pipelines send only pending ones. Closing one twice is refused,
    naming who closed it."""
    note = note.strip()
    row = await (
        await conn.execute(
            "UPDATE spend_anomalies SET status = 'closed', closed_at = now(), closed_by = %s, close_note = %s"
            " WHERE workspace_id = %s AND id = %s AND status = 'open' RETURNING subject_kind, subject, kind",
            (actor.label, note or None, workspace_id, anomaly_id),
        )
    ).fetchone()
    if row is None:
        found = await list_anomalies(conn, workspace_id=workspace_id, status=None, anomaly_id=anomaly_id)
        if not found:
            raise NotFound("no such anomaly in this workspace")
        raise Conflict(f"this anomaly was already closed by {found[0].closed_by or 'someone'}")
    cancelled = await (
        await conn.execute(
            "UPDATE alert_deliveries SET status = 'cancelled'"
            " WHERE anomaly_id = %s AND status = 'pending' RETURNING channel",
            (anomaly_id,),
        )
    ).fetchall()
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="spend_anomaly.closed",
        resource_type="spend_anomaly",
        resource_id=anomaly_id,
        resource_label=f"{row['subject_kind']} {row['subject']}",
        details={
            "kind": row["kind"],
            "note": note or None,
            "cancelled_deliveries": sorted(r["channel"] for r in cancelled),
        },
    )
    (closed,) = await list_anomalies(conn, workspace_id=workspace_id, status=None, anomaly_id=anomaly_id)
    return closed
