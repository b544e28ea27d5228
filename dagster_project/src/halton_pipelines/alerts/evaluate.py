"""Which budget alerts the month so far raises, recorded once each in the control plane.

For every budget in `marts.budget_variance` for the current month: one `threshold` alert per configured
percentage the month-to-date spend has reached (50, 80, 100 by default), and one `forecast` alert when the
month's run rate (spend so far / days elapsed) takes it past the budget before the month ends, with the day it
would cross. `budget_alerts`' unique key (budget, month, kind, threshold) makes each fire once per month,
however often this runs (after every marts build and hourly). Each new alert gets a pending delivery per
configured channel and an audit event, in the same transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg
from clickhouse_connect.driver.client import Client
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class BudgetMonth:
    workspace_id: UUID
    budget_id: UUID
    scope_label: str
    period: date
    budget_usd: Decimal
    spend_usd: Decimal
    days_elapsed: int
    days_in_period: int

    @property
    def projected_usd(self) -> Decimal:
        return self.spend_usd * self.days_in_period / max(self.days_elapsed, 1)

    def breach_day(self) -> date | None:
        """The day the month's run rate reaches the budget, if within the month and not reached yet."""
        if self.spend_usd <= 0 or self.spend_usd >= self.budget_usd:
            return None
        daily = self.spend_usd / max(self.days_elapsed, 1)
        day = math.ceil(self.budget_usd / daily)
        return self.period + timedelta(days=day - 1) if day <= self.days_in_period else None


@dataclass(frozen=True)
class Alert:
    month: BudgetMonth
    kind: str  # threshold or forecast
    threshold_pct: int
    breach_day: date | None

    @property
    def message(self) -> str:
        m = self.month
        spent = f"${m.spend_usd:,.2f} of ${m.budget_usd:,.2f}"
        if self.kind == "forecast":
            return (
                f"{m.scope_label} is on course to exceed its {m.period:%B} budget by the "
                f"{_ordinal(self.breach_day.day if self.breach_day else m.days_in_period)}: {spent} spent "
                f"in {m.days_elapsed} days, ${m.projected_usd:,.2f} projected for the month"
            )
        return f"{m.scope_label} has reached {self.threshold_pct}% of its {m.period:%B} budget: {spent} spent"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def current_months(client: Client, marts: str) -> list[BudgetMonth]:
    """Each budget's newest month in the mart (the month dbt's as_of falls in)."""
    rows = client.query(
        "SELECT workspace_id, budget_id, scope, ifNull(project, ''), period, budget_usd, spend_usd,"
        " days_elapsed, days_in_period"
        f" FROM {marts}.budget_variance"
        f" WHERE period = (SELECT max(period) FROM {marts}.budget_variance)"
    ).result_rows
    return [
        BudgetMonth(
            workspace_id=UUID(str(ws)),
            budget_id=UUID(str(budget)),
            scope_label="The workspace" if scope == "workspace" else f"Project {project}",
            period=period,
            budget_usd=Decimal(budget_usd),
            spend_usd=Decimal(spend_usd),
            days_elapsed=int(elapsed),
            days_in_period=int(days),
        )
        for ws, budget, scope, project, period, budget_usd, spend_usd, elapsed, days in rows
    ]


def alerts_for(month: BudgetMonth, thresholds: list[int], forecast: bool) -> list[Alert]:
    if month.budget_usd <= 0:
        return []
    reached = month.spend_usd * 100 / month.budget_usd
    out = [Alert(month, "threshold", pct, None) for pct in sorted(thresholds) if reached >= pct]
    breach = month.breach_day()
    if forecast and breach is not None:
        out.append(Alert(month, "forecast", 0, breach))
    return out


def raise_alerts(database_url: str, months: list[BudgetMonth]) -> list[UUID]:
    """Record the alerts not raised before, with their deliveries and audit events; returns the new ids."""
    raised: list[UUID] = []
    with psycopg.connect(database_url) as conn, conn.transaction():
        settings = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, alert_thresholds, forecast_alert FROM budgets WHERE id = ANY(%s)",
                ([m.budget_id for m in months],),
            )
        }
        channels = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT workspace_id, webhook_url IS NOT NULL, smtp_host IS NOT NULL AND smtp_to <> '{}'"
                " FROM alert_channels WHERE workspace_id = ANY(%s)",
                (list({m.workspace_id for m in months}),),
            )
        }
        for month in months:
            if month.budget_id not in settings:
                continue  # deleted since the marts were built
            thresholds, forecast = settings[month.budget_id]
            for alert in alerts_for(month, list(thresholds), forecast):
                row = conn.execute(
                    "INSERT INTO budget_alerts (workspace_id, budget_id, period, kind, threshold_pct, scope_label,"
                    " budget_usd, spend_usd, projected_usd, breach_day, message)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (budget_id, period, kind, threshold_pct) DO NOTHING RETURNING id",
                    (
                        month.workspace_id,
                        month.budget_id,
                        month.period,
                        alert.kind,
                        alert.threshold_pct,
                        month.scope_label,
                        month.budget_usd,
                        month.spend_usd,
                        month.projected_usd,
                        alert.breach_day,
                        alert.message,
                    ),
                ).fetchone()
                if row is None:
                    continue
                alert_id = row[0]
                raised.append(alert_id)
                webhook, email = channels.get(month.workspace_id, (False, False))
                for channel, wanted in (("webhook", webhook), ("email", email)):
                    if wanted:
                        conn.execute(
                            "INSERT INTO alert_deliveries (alert_id, channel) VALUES (%s, %s)",
                            (alert_id, channel),
                        )
                conn.execute(
                    "INSERT INTO audit_events (workspace_id, actor_type, actor_label, event, resource_type,"
                    " resource_id, resource_label, details) VALUES (%s, 'system', 'budget alerts',"
                    " 'budget_alert.raised', 'budget', %s, %s, %s)",
                    (
                        month.workspace_id,
                        str(month.budget_id),
                        month.scope_label,
                        Jsonb(
                            {
                                "alert_id": str(alert_id),
                                "kind": alert.kind,
                                "threshold_pct": alert.threshold_pct,
                                "period": month.period.isoformat(),
                                "message": alert.message,
                            }
                        ),
                    ),
                )
    return raised
