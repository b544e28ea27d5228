"""Sending raised budget alerts and spend anomalies (`anomalies`): a webhook (Slack-compatible JSON, HMAC-signed) and email (SMTP).

Each delivery is tried when due; a failure is retried with exponential backoff (`backoff_seconds` doubled per
attempt) up to `MAX_ATTEMPTS`, then marked failed. Every outcome is written on the delivery (status, attempts,
last error) and in the audit log, so the alerts list shows what reached whom.

The webhook body is Slack's incoming-webhook shape (`{"text": ...}`, which Slack, Mattermost and Teams'
Slack-compatible endpoints accept) plus an `alert` object for programs. It is signed like Stripe's and Slack's
own requests: `X-Halton-Timestamp: <unix seconds>` and `X-Halton-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>.<body>" under the signing secret>`, so a receiver can check both origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from halton_meter.secretbox import ALERT_CHANNEL_PURPOSE, fernet_for

MAX_ATTEMPTS = 5
TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-Halton-Signature"
TIMESTAMP_HEADER = "X-Halton-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


@dataclass(frozen=True)
class Due:
    delivery_id: Any
    channel: str
    attempts: int
    alert: dict[str, Any]
    target: dict[str, Any]
    resource: str = "budget_alert"  # or spend_anomaly: names the audit events and the resource they concern


CHANNEL_COLUMNS = (
    " c.webhook_url, c.webhook_secret_encrypted, c.smtp_host, c.smtp_port, c.smtp_starttls,"
    " c.smtp_username, c.smtp_password_encrypted, c.smtp_from, c.smtp_to"
)


def deliver_due(
    database_url: str, secret_key: str, *, now: datetime, backoff_seconds: float
) -> dict[str, int]:
    """Try every delivery due at `now`; returns counts by outcome (delivered, retrying, failed, and cancelled: its
    anomaly was closed while it was being tried, and a failure is not retried)."""
    box = fernet_for(secret_key, ALERT_CHANNEL_PURPOSE)
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "cancelled": 0}
    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            rows = conn.execute(
                "SELECT d.id, d.channel, d.attempts, a.id, a.workspace_id, a.kind, a.threshold_pct, a.scope_label,"
                " a.period, a.budget_usd, a.spend_usd, a.projected_usd, a.breach_day, a.message,"
                + CHANNEL_COLUMNS
                + " FROM alert_deliveries d JOIN budget_alerts a ON a.id = d.alert_id"
                " LEFT JOIN alert_channels c ON c.workspace_id = a.workspace_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= %s ORDER BY d.next_attempt_at"
                " FOR UPDATE OF d SKIP LOCKED",
                (now,),
            ).fetchall()
            due = [_due(row, box) for row in rows]
            anomaly_rows = conn.execute(
                "SELECT d.id, d.channel, d.attempts, s.id, s.workspace_id, s.kind, s.subject_kind, s.subject,"
                " s.message, s.evidence,"
                + CHANNEL_COLUMNS
                + " FROM alert_deliveries d JOIN spend_anomalies s ON s.id = d.anomaly_id"
                " LEFT JOIN alert_channels c ON c.workspace_id = s.workspace_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= %s ORDER BY d.next_attempt_at"
                " FOR UPDATE OF d SKIP LOCKED",
                (now,),
            ).fetchall()
            due += [_anomaly_due(row, box) for row in anomaly_rows]
        for item in due:
            try:
                if item.channel == "webhook":
                    _post(item, now)
                else:
                    _mail(item)
                error = None
            except Exception as exc:  # any failure of the far end is retried; its words are kept
                error = f"{type(exc).__name__}: {exc}"[:1000]
            outcome = _record(conn, item, error, now=now, backoff_seconds=backoff_seconds)
            counts[outcome] += 1
    return counts


def _due(row: tuple, box) -> Due:
    (delivery, channel, attempts, alert_id, workspace, kind, pct, label, period, budget, spend, projected, breach,
     message, url, secret, host, port, starttls, user, password, sender, recipients) = row  # fmt: skip
    alert = {
        "type": "budget_alert", "id": str(alert_id), "workspace_id": str(workspace), "kind": kind, "threshold_pct": pct, "scope": label,
        "period": period.isoformat(), "budget_usd": str(budget), "spend_usd": str(spend),
        "projected_usd": str(projected) if projected is not None else None,
        "breach_day": breach.isoformat() if breach else None, "message": message,
    }  # fmt: skip
    return Due(
        delivery,
        channel,
        attempts,
        alert,
        _target(box, url, secret, host, port, starttls, user, password, sender, recipients),
    )


def _anomaly_due(row: tuple, box) -> Due:
    (delivery, channel, attempts, anomaly_id, workspace, kind, subject_kind, subject, message, evidence,
     url, secret, host, port, starttls, user, password, sender, recipients) = row  # fmt: skip
    alert = {
        "type": "spend_anomaly", "id": str(anomaly_id), "workspace_id": str(workspace), "kind": kind,
        "scope": f"{subject_kind} {subject}", "message": message, "evidence": evidence,
    }  # fmt: skip
    target = _target(box, url, secret, host, port, starttls, user, password, sender, recipients)
    return Due(delivery, channel, attempts, alert, target, resource="spend_anomaly")


def _target(box, url, secret, host, port, starttls, user, password, sender, recipients) -> dict[str, Any]:
    return {
        "url": url,
        "secret": box.decrypt(bytes(secret)).decode() if secret else None,
        "host": host,
        "port": port,
        "starttls": starttls,
        "username": user,
        "password": box.decrypt(bytes(password)).decode() if password else None,
        "sender": sender,
        "recipients": list(recipients or ()),
    }


def _post(item: Due, now: datetime) -> None:
    url = item.target["url"]
    if not url:
        raise RuntimeError("no webhook URL is set any more (Settings: Alerts)")
    body = json.dumps({"text": item.alert["message"], "alert": item.alert}, separators=(",", ":")).encode()
    stamp = int(now.timestamp())
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(stamp)}
    if item.target["secret"]:
        headers[SIGNATURE_HEADER] = sign(item.target["secret"], stamp, body)
    response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS, follow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the webhook answered HTTP {response.status_code}: {response.text[:200]}")


def _mail(item: Due) -> None:
    t = item.target
    if not t["host"] or not t["recipients"]:
        raise RuntimeError("no SMTP server or recipients are set any more (Settings: Alerts)")
    message = EmailMessage()
    message["Subject"] = f"[Halton] {item.alert['message'][:120]}"
    message["From"] = t["sender"] or "halton-alerts@localhost"
    message["To"] = ", ".join(t["recipients"])
    message.set_content(f"{item.alert['message']}\n\n{json.dumps(item.alert, indent=2)}\n")
    with smtplib.SMTP(t["host"], t["port"] or 25, timeout=TIMEOUT_SECONDS) as smtp:
        if t["starttls"]:
            smtp.starttls()
        if t["username"]:
            smtp.login(t["username"], t["password"] or "")
        smtp.send_message(message)


def _record(
    conn: psycopg.Connection, item: Due, error: str | None, *, now: datetime, backoff_seconds: float
) -> str:
    attempts = item.attempts + 1
    if error is None:
        outcome, status, event = "delivered", "delivered", f"{item.resource}.delivered"
        next_at = now
    elif attempts >= MAX_ATTEMPTS:
        outcome, status, event = "failed", "failed", f"{item.resource}.delivery_failed"
        next_at = now
    else:
        outcome, status, event = "retrying", "pending", f"{item.resource}.delivery_retrying"
        next_at = now + timedelta(seconds=backoff_seconds * 2 ** (attempts - 1))
    with conn.transaction():
        # Closing an anomaly cancels its pending deliveries (halton_api.store.spend_anomalies); one already in
        # flight then keeps "cancelled" unless it reached the receiver (then it was delivered: say so).
        updated = conn.execute(
            "UPDATE alert_deliveries SET status = %s, attempts = %s, next_attempt_at = %s, last_error = %s,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN %s ELSE delivered_at END"
            " WHERE id = %s AND (status = 'pending' OR %s = 'delivered') RETURNING id",
            (status, attempts, next_at, error, status, now, item.delivery_id, status),
        ).fetchone()
        if updated is None:
            return "cancelled"
        conn.execute(
            "INSERT INTO audit_events (workspace_id, actor_type, actor_label, event, resource_type, resource_id,"
            " resource_label, details) VALUES (%s, 'system', %s, %s, %s, %s, %s, %s)",
            (
                item.alert["workspace_id"],
                "budget alerts" if item.resource == "budget_alert" else "runaway detection",
                event,
                item.resource,
                item.alert["id"],
                item.alert["scope"],
                Jsonb(
                    {
                        "channel": item.channel,
                        "attempt": attempts,
                        "error": error,
                        "next_attempt_at": next_at.isoformat() if status == "pending" else None,
                    }
                ),
            ),
        )
    return outcome
