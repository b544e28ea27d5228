"""Where a budget's month is heading: the run rate of the month so far, combined with the shape of the same
days of earlier months when there are any.

The run rate alone (spend so far / days elapsed x days in the month) misreads a month whose spend comes late
(a batch job at month end, invoices run on the 25th): by the 15th it has seen a fifth of the month and projects
two fifths. Earlier months say how much of a month's spend had come by this day of the month: spend so far
divided by that share is what the month comes to if it follows them. The forecast is the mean of the run rate's
projection and each earlier month's (their pooled shape, counted once per month: three months of history
outweigh this month's pace three to one, one month of history weighs the same as it), and the spend still to
come is laid over the remaining days as the earlier months spent theirs, so the breach day follows their shape
too. With no earlier month, or none that had spent anything by this day, it is the run rate alone.

The rule lives here, once, because two readers show it and must agree: the pipelines' forecast alert and the
API's budget card ("heading for"). They may not import each other (tests/test_import_direction.py) and both may
import the warehouse; the `budget_variance` mart keeps no projection of its own for the same reason (dbt could
not call this, and a second copy in SQL would drift). Each reader fetches its scope's days (`HISTORY_MONTHS`
months before the current one) and hands them to `months_of_days`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

RUN_RATE = "run rate"
HISTORY_MONTHS = 3  # earlier months whose shape the forecast follows


@dataclass(frozen=True)
class EarlierMonth:
    """One earlier month's spend on each day of it (index 0 is the 1st)."""

    daily: tuple[Decimal, ...]

    @property
    def total(self) -> Decimal:
        return sum(self.daily, Decimal(0))

    def through(self, day: int) -> Decimal:
        """Spend up to and including `day` of the month (all of it for a shorter month)."""
        return sum(self.daily[:day], Decimal(0))

    def on(self, day: int) -> Decimal:
        return self.daily[day - 1] if day <= len(self.daily) else Decimal(0)


def history_start(period: date) -> date:
    """The first day of the earliest month the forecast of `period`'s month follows."""
    months = period.year * 12 + period.month - 1 - HISTORY_MONTHS
    return date(months // 12, months % 12 + 1, 1)


def months_of_days(days: Iterable[tuple[date, Decimal]]) -> list[EarlierMonth]:
    """Earlier months, oldest first, from a scope's (day, spend) rows of them (days not listed spent nothing)."""
    by_month: dict[date, list[Decimal]] = {}
    for day, amount in days:
        daily = by_month.setdefault(day.replace(day=1), [Decimal(0)] * 31)
        daily[day.day - 1] += Decimal(amount)
    return [EarlierMonth(tuple(daily)) for _, daily in sorted(by_month.items())]


@dataclass(frozen=True)
class Forecast:
    projected_usd: Decimal
    breach_day: date | None  # the day the month crosses the budget, if it does before the month ends
    basis: str  # what the projection used, said in the alert and on the budget card

    @property
    def uses_history(self) -> bool:
        return self.basis != RUN_RATE


def forecast(
    *,
    period: date,
    budget_usd: Decimal,
    spend_usd: Decimal,
    days_elapsed: int,
    days_in_period: int,
    earlier: list[EarlierMonth],
) -> Forecast:
    elapsed = max(days_elapsed, 1)
    run_rate = spend_usd * days_in_period / elapsed
    history = [m for m in earlier if m.total > 0]
    reached = sum((m.through(elapsed) for m in history), Decimal(0))
    if spend_usd <= 0 or reached <= 0:
        # Nothing spent yet, or no earlier month had spent anything by this day: their shape says nothing.
        history = []
    if history:
        share = reached / sum((m.total for m in history), Decimal(0))
        projected = (run_rate + len(history) * (spend_usd / share)) / (len(history) + 1)
        weights = [
            sum((m.on(day) for m in history), Decimal(0)) for day in range(elapsed + 1, days_in_period + 1)
        ]
        months = "month" if len(history) == 1 else "months"
        basis = f"run rate and the same days of {len(history)} earlier {months}"
    else:
        projected = run_rate
        weights = []
        basis = RUN_RATE
    if not any(weights):  # the rest of the month at an even pace
        weights = [Decimal(1)] * (days_in_period - elapsed)
    return Forecast(projected, _breach_day(period, budget_usd, spend_usd, elapsed, projected, weights), basis)


def _breach_day(
    period: date, budget: Decimal, spent: Decimal, elapsed: int, projected: Decimal, weights: list[Decimal]
) -> date | None:
    """The first remaining day on which the spend to come, laid over the days by `weights`, crosses the budget."""
    if spent <= 0 or spent >= budget or projected <= budget:
        return None
    to_come = projected - spent
    total = sum(weights, Decimal(0))
    cumulative = spent
    for offset, weight in enumerate(weights, start=1):
        cumulative += to_come * weight / total
        if cumulative >= budget:
            return period + timedelta(days=elapsed + offset - 1)
    return None  # rounding at the last day: the projection only just reaches the budget
