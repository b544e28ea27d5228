"""Spend queries over the marts (`daily_spend`, or `hourly_spend` for a 24-hour period), shared by every page.

Synchronous functions that take a clickhouse-connect client and the database names: pages run them in a
worker thread through `MartsReader.run`. Every one applies the whole filter rail through `Scope.condition`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from halton_api.dashboards.filters import Period, Scope, month_end, month_start
from halton_api.dashboards.models import Change, PeriodPublic, Ranked, SeriesPublic, TimeSeries, Totals
from halton_api.dashboards.reader import Marts

GRAINS = ("day", "week", "month")
_BUCKET = {"hour": "hour", "day": "day", "week": "toMonday(day)", "month": "toStartOfMonth(day)"}
ZERO = Decimal(0)
CENT = Decimal("0.01")
TENTH = Decimal("0.1")


def granularity(period: Period, grain: str = "day") -> str:
    return "hour" if period.hourly else grain


def period_public(period: Period, grain: str = "day") -> PeriodPublic:
    return PeriodPublic(
        label=period.label, start=period.start, end=period.end, granularity=granularity(period, grain)
    )


def _source(period: Period) -> tuple[str, str]:
    return ("hourly_spend", "hour") if period.hourly else ("daily_spend", "day")


def totals(
    client: Client, m: Marts, scope: Scope, *, period: Period | None = None, skip: Sequence[str] = ()
) -> Totals:
    when = period or scope.period
    table, time_column = _source(when)
    where, params = scope.condition(time_column=time_column, period=when, skip=skip)
    row = client.query(
        "SELECT sum(spend_usd), sum(requests), sum(error_requests), sum(input_tokens), sum(output_tokens)"
        f" FROM {m.marts}.{table} WHERE {where}",
        parameters=params,
    ).result_rows[0]
    return Totals(
        spend_usd=row[0] or ZERO,
        requests=int(row[1] or 0),
        error_requests=int(row[2] or 0),
        input_tokens=int(row[3] or 0),
        output_tokens=int(row[4] or 0),
    )


def day_period(first: date, last: date, label: str) -> Period:
    """Whole UTC days from `first` to `last` inclusive."""
    return Period(
        start=datetime.combine(first, time(), UTC),
        end=datetime.combine(last + timedelta(days=1), time(), UTC),
        label=label,
    )


def calendar_figures(
    client: Client, m: Marts, scope: Scope, *, skip: Sequence[str] = ()
) -> dict[str, Decimal]:
    """Spend today, this month, last month and this year (the rail's other filters apply; its dates don't)."""
    today = scope.now.date()
    this_month = month_start(today)
    last_month = month_start(this_month - timedelta(days=1))
    year = today.replace(month=1, day=1)
    where, params = scope.condition(time_column=None, skip=skip)
    row = client.query(
        "SELECT sumIf(spend_usd, day = %(today)s), sumIf(spend_usd, day >= %(this_month)s),"
        " sumIf(spend_usd, day >= %(last_month)s AND day < %(this_month)s),"
        " sumIf(spend_usd, day >= %(year)s),"
        " sumIf(spend_usd, day >= %(last_month)s AND day < %(last_month_same_day)s)"
        f" FROM {m.marts}.daily_spend WHERE {where} AND day >= least(%(last_month)s, %(year)s) AND day <= %(today)s",
        parameters={
            **params,
            "today": today,
            "this_month": this_month,
            "last_month": last_month,
            "year": year,
            # The same number of days into last month as today is into this one (for a fair comparison).
            "last_month_same_day": min(last_month + timedelta(days=today.day), this_month),
        },
    ).result_rows[0]
    keys = ("today", "this_month", "last_month", "year_to_date", "last_month_to_same_day")
    return {key: (value or ZERO) for key, value in zip(keys, row, strict=True)}


def change(current: Decimal, previous: Decimal) -> Change:
    pct = ((current - previous) / previous * 100).quantize(TENTH) if previous else None
    return Change(current_usd=current, previous_usd=previous, change_usd=current - previous, change_pct=pct)


def ranking(
    client: Client,
    m: Marts,
    scope: Scope,
    *,
    by: Sequence[str],
    limit: int | None = None,
    period: Period | None = None,
    skip: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """(…by columns, spend, requests, input tokens, output tokens) per group, most spend first."""
    when = period or scope.period
    table, time_column = _source(when)
    where, params = scope.condition(time_column=time_column, period=when, skip=skip)
    columns = ", ".join(by)
    return client.query(
        f"SELECT {columns}, sum(spend_usd) AS spend, sum(requests), sum(input_tokens), sum(output_tokens)"
        f" FROM {m.marts}.{table} WHERE {where} GROUP BY {columns} ORDER BY spend DESC, {columns}"
        + (f" LIMIT {int(limit)}" if limit else ""),
        parameters=params,
    ).result_rows


def ranked(
    rows: list[tuple[Any, ...]], total: Decimal, *, keys: int, label, href=None, detail=None
) -> list[Ranked]:
    """`ranking` rows as `Ranked` items with their share of `total`."""
    out = []
    for row in rows:
        key = row[:keys]
        spend, requests, input_tokens, output_tokens = row[keys:]
        out.append(
            Ranked(
                key="/".join(str(k) for k in key),
                label=label(*key),
                spend_usd=spend,
                requests=int(requests),
                input_tokens=int(input_tokens),
                output_tokens=int(output_tokens),
                share_pct=share(spend, total),
                href=href(*key) if href else None,
                detail=detail(*key) if detail else "",
            )
        )
    return out


def share(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * 100).quantize(TENTH) if whole else ZERO


def buckets(period: Period, grain: str) -> list[datetime]:
    """Bucket starts of `period` at `grain` (hour for a 24-hour period)."""
    if period.hourly or grain == "day":
        return period.buckets()
    starts: list[datetime] = []
    day = period.first_day
    while day <= period.last_day:
        start = day - timedelta(days=day.weekday()) if grain == "week" else month_start(day)
        moment = datetime.combine(start, time(), UTC)
        if not starts or starts[-1] != moment:
            starts.append(moment)
        day = day + timedelta(days=7 - day.weekday()) if grain == "week" else month_end(day)
    return starts


def series(
    client: Client,
    m: Marts,
    scope: Scope,
    *,
    by: str | None,
    grain: str = "day",
    period: Period | None = None,
    skip: Sequence[str] = (),
) -> tuple[list[datetime], dict[str, list[Decimal]], list[int]]:
    """Spend per bucket and `by` value (every bucket present, zeros filled), and requests per bucket."""
    when = period or scope.period
    table, time_column = _source(when)
    bucket = _BUCKET[granularity(when, grain)]
    where, params = scope.condition(time_column=time_column, period=when, skip=skip)
    key = by or "''"
    rows = client.query(
        f"SELECT {bucket} AS bucket, {key} AS key, sum(spend_usd), sum(requests)"
        f" FROM {m.marts}.{table} WHERE {where} GROUP BY bucket, key ORDER BY bucket, key",
        parameters=params,
    ).result_rows
    starts = buckets(when, grain)
    index = {as_moment(s): i for i, s in enumerate(starts)}
    spend: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(starts))
    requests = [0] * len(starts)
    for moment, name, value, count_ in rows:
        i = index.get(as_moment(moment))
        if i is None:
            continue
        spend[str(name)][i] += value
        requests[i] += int(count_)
    ordered = dict(sorted(spend.items(), key=lambda item: -sum(item[1])))
    return starts, ordered, requests


def as_moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)


def time_series(starts: list[datetime], spend: dict[str, list[Decimal]], requests: list[int] | None = None,
                baseline: tuple[str, list[Decimal]] | None = None) -> TimeSeries:  # fmt: skip
    return TimeSeries(
        buckets=[s.isoformat() for s in starts],
        series=[SeriesPublic(name=name, values=values) for name, values in spend.items()],
        baseline=SeriesPublic(name=baseline[0], values=baseline[1]) if baseline else None,
        requests=requests,
    )


def models_seen(client: Client, m: Marts, workspace_id: Any) -> list[tuple[str, str]]:
    """(provider, model) pairs the workspace has spend on, for the rail."""
    return [
        (str(provider), str(model))
        for provider, model in client.query(
            f"SELECT DISTINCT provider, model FROM {m.marts}.daily_spend WHERE workspace_id = %(ws)s"
            " ORDER BY provider, model",
            parameters={"ws": workspace_id},
        ).result_rows
    ]
