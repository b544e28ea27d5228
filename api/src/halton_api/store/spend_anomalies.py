"""Runaway spend in the control plane: the anomalies the pipelines raised (halton_pipelines.alerts.anomalies)
with their evidence and each delivery's status, as the overview card and the JSON API read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from halton_api.store import Connection
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
    deliveries: list[DeliveryPublic]


async def list_anomalies(
    conn: Connection, *, workspace_id: UUID, status: str | None = "open", limit: int = 100
) -> list[SpendAnomalyPublic]:
    rows = await (
        await conn.execute(
            "SELECT s.id, s.kind, s.subject_kind, s.subject, s.status, s.message, s.evidence, s.raised_at,"
            " coalesce(json_agg(json_build_object('channel', d.channel, 'status', d.status, 'attempts', d.attempts,"
            "   'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,"
            "   'last_error', d.last_error, 'delivered_at', d.delivered_at) ORDER BY d.channel)"
            "   FILTER (WHERE d.id IS NOT NULL), '[]') AS deliveries"
            " FROM spend_anomalies s LEFT JOIN alert_deliveries d ON d.anomaly_id = s.id"
            " WHERE s.workspace_id = %s AND (%s::text IS NULL OR s.status = %s)"
            " GROUP BY s.id ORDER BY s.raised_at DESC, s.kind LIMIT %s",
            (workspace_id, status, status, limit),
        )
    ).fetchall()
    return [SpendAnomalyPublic.model_validate(dict(r)) for r in rows]
