"""A monthly budget against the month so far, and where the month is heading at this pace."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from halton_api.dashboards.page_models import BudgetStatus

TENTH = Decimal("0.1")


def budget_status(
    budget: Decimal | None, month_to_date: Decimal, today: date, *, scope: str
) -> BudgetStatus | None:
    if budget is None:
        return None
    days = calendar.monthrange(today.year, today.month)[1]
    projected = (month_to_date * days / today.day).quantize(Decimal("0.01"))
    variance = month_to_date - budget
    status = "over" if month_to_date > budget else "at_risk" if projected > budget else "under"
    return BudgetStatus(
        scope=scope,  # type: ignore[arg-type]
        monthly_budget_usd=budget,
        month_to_date_usd=month_to_date,
        variance_usd=variance,
        variance_pct=(variance / budget * 100).quantize(TENTH) if budget else None,
        projected_usd=projected,
        status=status,  # type: ignore[arg-type]
    )
