"""Budget alerts in the control plane: each budget's thresholds, where a workspace's alerts go (secrets sealed
with halton_meter.secretbox), and the alerts raised with each delivery's status. The pipelines raise and deliver
them (halton_pipelines.alerts); this module is what owners edit and read."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel

from halton_api.errors import Invalid, NotFound
from halton_api.store import Connection
from halton_api.store.audit import Actor, record
from halton_meter.secretbox import ALERT_CHANNEL_PURPOSE, fernet_for

ALLOWED_THRESHOLDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
    70,
    75,
    80,
    85,
    90,
    95,
    100,
    110,
    120,
    150,
    200,
)  # fmt: skip (the CHECK of budgets.alert_thresholds, migration 0017)


class AlertChannelsPublic(BaseModel):
    """Where alerts go; secrets are never returned, only whether one is set."""

    webhook_url: str | None = None
    webhook_signed: bool = False
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password_set: bool = False
    smtp_from: str | None = None
    smtp_to: list[str] = []


class DeliveryPublic(BaseModel):
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None


class BudgetAlertPublic(BaseModel):
    id: UUID
    budget_id: UUID
    scope: str
    period: date
    kind: str
    threshold_pct: int
    budget_usd: Decimal
    spend_usd: Decimal
    projected_usd: Decimal | None
    breach_day: date | None
    message: str
    raised_at: datetime
    deliveries: list[DeliveryPublic]


def parse_thresholds(text: str) -> list[int]:
    """ "50, 80, 100" -> [50, 80, 100]; Invalid naming what is wrong."""
    values: list[int] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip().rstrip("%").strip()
        if not part:
            continue
        if not part.isdigit() or int(part) not in ALLOWED_THRESHOLDS:
            raise Invalid(
                f"alert thresholds: {part!r} is not one of {', '.join(map(str, ALLOWED_THRESHOLDS))} (percent)"
            )
        values.append(int(part))
    return sorted(set(values))


async def set_thresholds(
    conn: Connection,
    *,
    workspace_id: UUID,
    budget_id: UUID,
    thresholds: list[int],
    forecast: bool,
    actor: Actor,
) -> None:
    row = await (
        await conn.execute(
            "UPDATE budgets SET alert_thresholds = %s, forecast_alert = %s, updated_at = now()"
            " WHERE id = %s AND workspace_id = %s RETURNING id",
            (thresholds, forecast, budget_id, workspace_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound("budget: not one of this workspace's budgets")
    await record(
        conn, workspace_id=workspace_id, actor=actor, event="budget.alerts_set", resource_type="budget",
        resource_id=budget_id, details={"thresholds": thresholds, "forecast": forecast},
    )  # fmt: skip


def _url(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"webhook URL: {value[:80]!r} is not an http(s) URL")
    return value


async def save_channels(
    conn: Connection, *, workspace_id: UUID, secret: bytes, actor: Actor, webhook_url: str, webhook_secret: str,
    smtp_host: str, smtp_port: int | None, smtp_starttls: bool, smtp_username: str, smtp_password: str,
    smtp_from: str, smtp_to: str,
) -> AlertChannelsPublic:  # fmt: skip
    """Save the channels; an empty secret field keeps the stored secret (forms never show it back)."""
    box = fernet_for(secret, ALERT_CHANNEL_PURPOSE)
    recipients = [a.strip() for a in smtp_to.replace(";", ",").split(",") if a.strip()]
    for address in recipients:
        if "@" not in address or any(c.isspace() for c in address):
            raise Invalid(f"email recipients: {address!r} is not an email address")
    host = smtp_host.strip() or None
    if host and not recipients:
        raise Invalid("email recipients: name at least one address to send alerts to")
    await conn.execute(
        "INSERT INTO alert_channels (workspace_id, webhook_url, webhook_secret_encrypted, smtp_host, smtp_port,"
        " smtp_starttls, smtp_username, smtp_password_encrypted, smtp_from, smtp_to)"
        " VALUES (%(ws)s, %(url)s, %(wsec)s, %(host)s, %(port)s, %(tls)s, %(user)s, %(pw)s, %(from)s, %(to)s)"
        " ON CONFLICT (workspace_id) DO UPDATE SET webhook_url = EXCLUDED.webhook_url,"
        " webhook_secret_encrypted = coalesce(EXCLUDED.webhook_secret_encrypted,"
        "   alert_channels.webhook_secret_encrypted),"
        " smtp_host = EXCLUDED.smtp_host, smtp_port = EXCLUDED.smtp_port, smtp_starttls = EXCLUDED.smtp_starttls,"
        " smtp_username = EXCLUDED.smtp_username,"
        " smtp_password_encrypted = coalesce(EXCLUDED.smtp_password_encrypted, alert_channels.smtp_password_encrypted),"
        " smtp_from = EXCLUDED.smtp_from, smtp_to = EXCLUDED.smtp_to, updated_at = now()",
        {
            "ws": workspace_id, "url": _url(webhook_url),
            "wsec": box.encrypt(webhook_secret.encode()) if webhook_secret else None,
            "host": host, "port": smtp_port, "tls": smtp_starttls, "user": smtp_username.strip() or None,
            "pw": box.encrypt(smtp_password.encode()) if smtp_password else None,
            "from": smtp_from.strip() or None, "to": recipients,
        },
    )  # fmt: skip
    saved = await channels(conn, workspace_id=workspace_id)
    await record(
        conn, workspace_id=workspace_id, actor=actor, event="alert_channels.saved", resource_type="workspace",
        resource_id=workspace_id, details=saved.model_dump(),
    )  # fmt: skip
    return saved


async def channels(conn: Connection, *, workspace_id: UUID) -> AlertChannelsPublic:
    row = await (
        await conn.execute(
            "SELECT webhook_url, webhook_secret_encrypted IS NOT NULL AS webhook_signed, smtp_host, smtp_port,"
            " smtp_starttls, smtp_username, smtp_password_encrypted IS NOT NULL AS smtp_password_set, smtp_from,"
            " smtp_to FROM alert_channels WHERE workspace_id = %s",
            (workspace_id,),
        )
    ).fetchone()
    return AlertChannelsPublic.model_validate(dict(row)) if row else AlertChannelsPublic()


async def list_alerts(conn: Connection, *, workspace_id: UUID, limit: int = 200) -> list[BudgetAlertPublic]:
    rows = await (
        await conn.execute(
            "SELECT a.id, a.budget_id, a.scope_label AS scope, a.period, a.kind, a.threshold_pct, a.budget_usd,"
            " a.spend_usd, a.projected_usd, a.breach_day, a.message, a.raised_at,"
            " coalesce(json_agg(json_build_object('channel', d.channel, 'status', d.status, 'attempts', d.attempts,"
            "   'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,"
            "   'last_error', d.last_error, 'delivered_at', d.delivered_at) ORDER BY d.channel)"
            "   FILTER (WHERE d.id IS NOT NULL), '[]') AS deliveries"
            " FROM budget_alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id"
            " WHERE a.workspace_id = %s GROUP BY a.id ORDER BY a.raised_at DESC LIMIT %s",
            (workspace_id, limit),
        )
    ).fetchall()
    return [BudgetAlertPublic.model_validate(dict(r)) for r in rows]


async def thresholds_by_budget(conn: Connection, *, workspace_id: UUID) -> dict[UUID, tuple[list[int], bool]]:
    rows = await (
        await conn.execute(
            "SELECT id, alert_thresholds, forecast_alert FROM budgets WHERE workspace_id = %s",
            (workspace_id,),
        )
    ).fetchall()
    return {r["id"]: (list(r["alert_thresholds"]), r["forecast_alert"]) for r in rows}
