"""Runaway spend raised from `marts.spend_anomalies`, once per anomaly key, into the control plane.

Each new anomaly keeps its evidence (the spike and its baseline, or the loop's calls; the devices; the window),
gets a pending delivery per configured alert channel (delivered by `deliver.deliver_due`, like budget alerts)
and an audit event, in one transaction. The unique (workspace, anomaly key) makes a rebuild of the marts, or
the hourly run, raise nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from clickhouse_connect.driver.client import Client
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Anomaly:
    workspace_id: UUID
    key: str
    kind: str  # loop or spike
    subject_kind: str  # prompt, project or device
    subject: str
    evidence: dict[str, Any]

    @property
    def message(self) -> str:
        e = self.evidence
        names = e.get("device_names", {})
        devices = ", ".join(names.get(d, d) for d in e["devices"]) or "no device"
        if self.kind == "loop":
            return (
                f"Runaway loop: prompt {self.subject[:16]} was sent {e['requests']} times between "
                f"{e['window_start']} and {e['window_end']} (up to {e['requests_in_window']} within the loop "
                f"window) for ${e['spend_usd']:,.2f}, from device {devices}"
            )
        return (
            f"Runaway spend: {self.subject_kind} {self.subject} spent ${e['spend_usd']:,.2f} in the hour from "
            f"{e['peak_hour']} against a baseline of ${e['baseline_usd']:,.2f} (the same hour of "
            f"{e['baseline_weeks']} earlier weeks), {e['requests']} calls, from {devices}"
        )


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def current_anomalies(client: Client, marts: str) -> list[Anomaly]:
    rows = client.query(
        "SELECT workspace_id, anomaly_key, kind, subject_kind, subject, peak_hour, window_start, window_end,"
        " requests, spend_usd, baseline_usd, baseline_weeks, device_list, prompt_hash, requests_in_window"
        f" FROM {marts}.spend_anomalies ORDER BY workspace_id, anomaly_key"
    ).result_rows
    out = []
    for ws, key, kind, subject_kind, subject, peak, start, end, requests, spend, baseline, weeks, devices, prompt, in_window in rows:  # fmt: skip
        evidence = {
            "peak_hour": _stamp(peak), "window_start": _stamp(start), "window_end": _stamp(end),
            "requests": int(requests), "spend_usd": float(spend), "baseline_usd": float(baseline),
            "baseline_weeks": int(weeks), "devices": list(devices), "prompt_hash": prompt or None,
            "requests_in_window": int(in_window),
        }  # fmt: skip
        out.append(Anomaly(UUID(str(ws)), key, kind, subject_kind, subject, evidence))
    return out


def raise_anomalies(database_url: str, anomalies: list[Anomaly]) -> list[UUID]:
    """Record the anomalies not raised before, with their deliveries and audit events; returns the new ids."""
    raised: list[UUID] = []
    with psycopg.connect(database_url) as conn, conn.transaction():
        known = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM workspaces WHERE id = ANY(%s)", (list({a.workspace_id for a in anomalies}),)
            )
        }
        channels = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT workspace_id, webhook_url IS NOT NULL, smtp_host IS NOT NULL AND smtp_to <> '{}'"
                " FROM alert_channels WHERE workspace_id = ANY(%s)",
                (list(known),),
            )
        }
        # Devices by the name their owners know them by (the hostname), for the message and the evidence.
        names = {
            str(row[0]): row[1]
            for row in conn.execute(
                "SELECT id, hostname FROM devices WHERE workspace_id = ANY(%s)", (list(known),)
            )
        }
        for anomaly in anomalies:
            if anomaly.workspace_id not in known:
                continue  # deleted since the marts were built
            anomaly.evidence["device_names"] = {
                d: names[d] for d in anomaly.evidence["devices"] if d in names
            }
            row = conn.execute(
                "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message,"
                " evidence) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (workspace_id, anomaly_key) DO NOTHING RETURNING id",
                (
                    anomaly.workspace_id,
                    anomaly.key,
                    anomaly.kind,
                    anomaly.subject_kind,
                    anomaly.subject,
                    anomaly.message,
                    Jsonb(anomaly.evidence),
                ),
            ).fetchone()
            if row is None:
                continue
            anomaly_id = row[0]
            raised.append(anomaly_id)
            webhook, email = channels.get(anomaly.workspace_id, (False, False))
            for channel, wanted in (("webhook", webhook), ("email", email)):
                if wanted:
                    conn.execute(
                        "INSERT INTO alert_deliveries (anomaly_id, channel) VALUES (%s, %s)",
                        (anomaly_id, channel),
                    )
            conn.execute(
                "INSERT INTO audit_events (workspace_id, actor_type, actor_label, event, resource_type,"
                " resource_id, resource_label, details) VALUES (%s, 'system', 'runaway detection',"
                " 'spend_anomaly.raised', 'spend_anomaly', %s, %s, %s)",
                (
                    anomaly.workspace_id,
                    str(anomaly_id),
                    f"{anomaly.subject_kind} {anomaly.subject}",
                    Jsonb({"kind": anomaly.kind, "message": anomaly.message, **anomaly.evidence}),
                ),
            )
    return raised
