"""Which budget alerts the month so far raises, recorded once each in the control plane.

For every budget in `marts.budget_variance` for the current month (the workspace's, a project's or a cost
center's): one `threshold` alert per configured percentage the month-to-date spend has reached (50, 80, 100 by
default), and one `forecast` alert when the month is on course to pass the budget before it ends, with the day
it would cross (`halton_warehouse.budget_forecast`, the rule the dashboards' budget card shows too: the run
rate, combined with the shape of the same days of the earlier months in `marts.project_spend` when there are
any; the alert says which). `budget_alerts`' unique key (budget, month, kind, threshold) makes each fire once
per month, however often this runs (after every marts build and hourly). Each new alert gets a pending
delivery per configured channel and an audit event, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from uuid import UUID

import psycopg
from clickhouse_connect.driver.client import Client
from psycopg.types.json import Jsonb

from halton_warehouse.budget_forecast import HISTORY_MONTHS, EarlierMonth, Forecast, forecast, months_of_days


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

    earlier: list[EarlierMonth] = field(default_factory=list)

    def forecast(self) -> Forecast:
        return forecast(
            period=self.period,
            budget_usd=self.budget_usd,
            spend_usd=self.spend_usd,
            days_elapsed=self.days_elapsed,
            days_in_period=self.days_in_period,
            earlier=self.earlier,
        )


@dataclass(frozen=True)
class Alert:
    month: BudgetMonth
    kind: str  # threshold or forecast
    threshold_pct: int
    forecast: Forecast

    @property
    def breach_day(self) -> date | None:
        return self.forecast.breach_day if self.kind == "forecast" else None

    @property
    def message(self) -> str:
        m = self.month
        spent = f"${m.spend_usd:,.2f} of ${m.budget_usd:,.2f}"
        if self.kind == "forecast":
            f = self.forecast
            return (
                f"{m.scope_label} is on course to exceed its {m.period:%B} budget by the "
                f"{_ordinal(f.breach_day.day if f.breach_day else m.days_in_period)}: {spent} spent "
                f"in {m.days_elapsed} days, ${f.projected_usd:,.2f} projected for the month ({f.basis})"
            )
        return f"{m.scope_label} has reached {self.threshold_pct}% of its {m.period:%B} budget: {spent} spent"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _scope_label(scope: str, project: str, cost_center: str) -> str:
    if scope == "project":
        return f"Project {project}"
    if scope == "cost_center":
        return f"Cost center {cost_center}"
    return "The workspace"


def current_months(client: Client, marts: str) -> list[BudgetMonth]:
    """Each budget's newest month in the mart (the month dbt's as_of falls in), with its earlier months."""
    current = f"(SELECT max(period) FROM {marts}.budget_variance)"
    rows = client.query(
        "SELECT workspace_id, budget_id, scope, ifNull(project, ''), ifNull(cost_center_name, ''), period,"
        " budget_usd, spend_usd, days_elapsed, days_in_period"
        f" FROM {marts}.budget_variance WHERE period = {current}"
    ).result_rows
    earlier = _earlier_months(client, marts, current)
    return [
        BudgetMonth(
            workspace_id=UUID(str(ws)),
            budget_id=UUID(str(budget)),
            scope_label=_scope_label(scope, project, cost_center),
            period=period,
            budget_usd=Decimal(budget_usd),
            spend_usd=Decimal(spend_usd),
            days_elapsed=int(elapsed),
            days_in_period=int(days),
            earlier=earlier.get(UUID(str(budget)), []),
        )
        for ws, budget, scope, project, cost_center, period, budget_usd, spend_usd, elapsed, days in rows
    ]


def _earlier_months(client: Client, marts: str, current: str) -> dict[UUID, list[EarlierMonth]]:
    """Each budget's spend per day of the `HISTORY_MONTHS` months before the current one: what its scope
    (the workspace, the project, the cost center's projects) spent, from the per-project daily mart."""
    rows = client.query(
        "SELECT b.budget_id, d.day, sum(d.spend_usd) AS spend"
        f" FROM {marts}.budget_variance AS b"
        f" INNER JOIN {marts}.project_spend AS d ON d.workspace_id = b.workspace_id"
        f" WHERE b.period = {current}"
        " AND d.day >= addMonths(b.period, -%(months)s) AND d.day < b.period"
        " AND multiIf(b.scope = 'project', d.project = b.project,"
        "   b.scope = 'cost_center', d.cost_center_id = b.cost_center_id, 1)"
        " GROUP BY b.budget_id, d.day",
        parameters={"months": HISTORY_MONTHS},
    ).result_rows
    days: dict[UUID, list[tuple[date, Decimal]]] = {}
    for budget, day, amount in rows:
        days.setdefault(UUID(str(budget)), []).append((day, Decimal(amount)))
    return {budget: months_of_days(spent) for budget, spent in days.items()}


def alerts_for(month: BudgetMonth, thresholds: list[int], forecast_alert: bool) -> list[Alert]:
    if month.budget_usd <= 0:
        return []
    reached = month.spend_usd * 100 / month.budget_usd
    projection = month.forecast()
    out = [Alert(month, "threshold", pct, projection) for pct in sorted(thresholds) if reached >= pct]
    if forecast_alert and projection.breach_day is not None:
        out.append(Alert(month, "forecast", 0, projection))
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
            thresholds, forecast_alert = settings[month.budget_id]
            for alert in alerts_for(month, list(thresholds), forecast_alert):
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
                        alert.forecast.projected_usd,
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
                                "forecast_basis": alert.forecast.basis,
                            }
                        ),
                    ),
                )
    return raised
