"""Spend queries over the marts (`daily_spend`, or `hourly_spend` for a 24-hour period), shared by every page.

Synchronous functions that take a clickhouse-connect client and the database names: pages run them in a
worker thread through `MartsReader.run`. Every one applies the whole filter rail through `Scope.condition`.
A page's figures come in few round trips (named periods in one query, several rankings in one UNION ALL, a
series with its baseline in one): on a busy machine a round trip costs more than summing the few thousand
mart rows behind a page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from halton_api.dashboards.filters import (
    PROVIDERS,
    Period,
    Scope,
    month_end,
    month_period,
    month_start,
    naive,
    previous_month,
)
from halton_api.dashboards.model_names import DATED_SUFFIX
from halton_api.dashboards.page_models import Change, PeriodPublic, Ranked, SeriesPublic, TimeSeries, Totals
from halton_api.dashboards.reader import Marts

GRAINS = ("day", "week", "month")
_BUCKET = {"hour": "hour", "day": "day", "week": "toMonday(day)", "month": "toStartOfMonth(day)"}
_TOTALS = ("spend_usd", "requests", "error_requests", "input_tokens", "output_tokens")
ZERO = Decimal(0)
TENTH = Decimal("0.1")


def granularity(period: Period, grain: str = "day") -> str:
    return "hour" if period.hourly else grain


def period_public(period: Period, grain: str = "day") -> PeriodPublic:
    return PeriodPublic(
        label=period.label,
        start=period.start,
        end=period.end,
        granularity=granularity(period, grain),
        compared_with=period.compared_with(),
    )


def _source(period: Period) -> tuple[str, str]:
    return ("hourly_spend", "hour") if period.hourly else ("daily_spend", "day")


# --- totals ----------------------------------------------------------------------------------------------


def period_totals(
    client: Client, m: Marts, scope: Scope, periods: Mapping[str, Period], *, skip: Sequence[str] = ()
) -> dict[str, Totals]:
    """Totals of each named period: one query per source table (daily, hourly) whatever their number."""
    out: dict[str, Totals] = {}
    for hourly in (False, True):
        chosen = {name: period for name, period in periods.items() if period.hourly == hourly}
        if not chosen:
            continue
        table = "hourly_spend" if hourly else "daily_spend"
        where, params = scope.condition(time_column=None, skip=skip)
        conditions = []
        for i, period in enumerate(chosen.values()):
            params.update({f"d{i}": period.first_day, f"e{i}": period.last_day})
            condition = f"day BETWEEN %(d{i})s AND %(e{i})s"
            if hourly:
                params.update({f"s{i}": naive(period.start), f"t{i}": naive(period.end)})
                condition += f" AND hour >= %(s{i})s AND hour < %(t{i})s"
            conditions.append(condition)
        sums = ", ".join(f"sumIf({column}, {condition})" for condition in conditions for column in _TOTALS)
        row = client.query(
            f"SELECT {sums} FROM {m.marts}.{table} WHERE {where} AND ({' OR '.join(conditions)})",
            parameters=params,
        ).result_rows[0]
        for i, name in enumerate(chosen):
            values = row[i * len(_TOTALS) : (i + 1) * len(_TOTALS)]
            counts = {column: int(value or 0) for column, value in zip(_TOTALS[1:], values[1:], strict=True)}
            out[name] = Totals(spend_usd=values[0] or ZERO, **counts)
    return out


def totals(
    client: Client, m: Marts, scope: Scope, *, period: Period | None = None, skip: Sequence[str] = ()
) -> Totals:
    return period_totals(client, m, scope, {"period": period or scope.period}, skip=skip)["period"]


def day_period(first: date, last: date, label: str) -> Period:
    """Whole UTC days from `first` to `last` inclusive."""
    return Period(
        start=datetime.combine(first, time(), UTC),
        end=datetime.combine(last + timedelta(days=1), time(), UTC),
        label=label,
    )


def calendar_periods(now: datetime) -> dict[str, Period]:
    """Today, this month, last month, the year so far, and this month's previous period (`Period.previous`:
    last month up to today's day of the month, the fair comparison for this month so far)."""
    today = now.date()
    this_month = month_period(
        month_start(today), "This month", datetime.combine(today + timedelta(days=1), time(), UTC)
    )
    return {
        "today": day_period(today, today, "Today"),
        "this_month": this_month,
        "last_month": month_period(previous_month(today), "Last month", now),
        "year_to_date": day_period(today.replace(month=1, day=1), today, "Year to date"),
        "last_month_to_same_day": this_month.previous(),
    }


def change(current: Decimal, previous: Decimal) -> Change:
    pct = ((current - previous) / previous * 100).quantize(TENTH) if previous else None
    return Change(current_usd=current, previous_usd=previous, change_usd=current - previous, change_pct=pct)


def share(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * 100).quantize(TENTH) if whole else ZERO


# --- rankings --------------------------------------------------------------------------------------------


# Keys a ranking can group by besides the marts' columns: a model with its dated snapshots folded under it.
KEY_EXPRESSIONS = {"model_family": f"replaceRegexpOne(model, '{DATED_SUFFIX}', '')"}


def rankings(
    client: Client,
    m: Marts,
    scope: Scope,
    sets: Mapping[str, Sequence[str]],
    *,
    limit: int | None = None,
    period: Period | None = None,
    skip: Sequence[str] = (),
) -> dict[str, list[tuple[Any, ...]]]:
    """Breakdowns by several key sets in one round trip: {name: [(…keys as text, spend, requests, input
    tokens, output tokens)]}, most spend first, at most `limit` each."""
    when = period or scope.period
    table, time_column = _source(when)
    where, params = scope.condition(time_column=time_column, period=when, skip=skip)
    width = max(len(columns) for columns in sets.values())
    parts = []
    for i, columns in enumerate(sets.values()):
        exprs = [KEY_EXPRESSIONS.get(c, c) for c in columns]
        keys = [f"toString({e})" for e in exprs] + ["''"] * (width - len(columns))
        parts.append(
            f"SELECT {i} AS ranking, {', '.join(f'{k} AS k{j}' for j, k in enumerate(keys))},"
            " sum(spend_usd) AS spend, sum(requests), sum(input_tokens), sum(output_tokens)"
            f" FROM {m.marts}.{table} WHERE {where} GROUP BY {', '.join(exprs)}"
        )
    rows = client.query(" UNION ALL ".join(parts), parameters=params).result_rows
    names = list(sets)
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in names}
    for row in rows:
        name = names[row[0]]
        out[name].append((*row[1 : 1 + len(sets[name])], *row[1 + width :]))
    for found in out.values():
        found.sort(key=lambda r: (-r[-4], *r[:-4]))
        if limit:
            del found[limit:]
    return out


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
    """One breakdown: (…by columns as text, spend, requests, input tokens, output tokens), most spend first."""
    return rankings(client, m, scope, {"only": by}, limit=limit, period=period, skip=skip)["only"]


def ranked(
    rows: list[tuple[Any, ...]], total: Decimal, *, keys: int, label, href=None, detail=None
) -> list[Ranked]:
    """Ranking rows as `Ranked` items with their share of `total`."""
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


# --- time series -----------------------------------------------------------------------------------------


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


class Series:
    """Spend per bucket and key (zeros filled), requests per bucket, and the baseline's spend per bucket."""

    def __init__(self, starts: list[datetime]) -> None:
        self.starts = starts
        self.by_key: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(starts))
        self.requests = [0] * len(starts)
        self.baseline = [ZERO] * len(starts)

    @property
    def total(self) -> list[Decimal]:
        return [sum((values[i] for values in self.by_key.values()), ZERO) for i in range(len(self.starts))]

    def ordered(self) -> dict[str, list[Decimal]]:
        """Keys by their spend, largest first (the stacking order of the charts)."""
        return dict(sorted(self.by_key.items(), key=lambda item: -sum(item[1])))


def by_provider_label(found: Series) -> dict[str, list[Decimal]]:
    """A series keyed by provider, keyed by the providers' names as people write them (the charts' legend)."""
    return {PROVIDERS.get(name, name): values for name, values in found.ordered().items()}


def series(
    client: Client,
    m: Marts,
    scope: Scope,
    *,
    by: str | None,
    grain: str = "day",
    period: Period | None = None,
    baseline: Period | None = None,
    skip: Sequence[str] = (),
) -> Series:
    """Spend per bucket of the period by `by` (a column, or None for the total); with `baseline` (a period
    as long, e.g. the previous one), its total per bucket too, aligned bucket for bucket — one round trip."""
    when = period or scope.period
    table, time_column = _source(when)
    bucket = _BUCKET[granularity(when, grain)]
    key = f"toString({by})" if by else "''"
    where, params = scope.condition(time_column=time_column, period=when, skip=skip)
    statement = (
        f"SELECT 0 AS part, {bucket} AS bucket, {key} AS key, sum(spend_usd), sum(requests)"
        f" FROM {m.marts}.{table} WHERE {where} GROUP BY bucket, key"
    )
    if baseline is not None:
        before, before_params = scope.condition(time_column=time_column, period=baseline, skip=skip)
        params.update({f"b_{k}": v for k, v in before_params.items()})
        statement += (
            f" UNION ALL SELECT 1 AS part, {bucket} AS bucket, '' AS key, sum(spend_usd), sum(requests)"
            f" FROM {m.marts}.{table} WHERE {before.replace('%(', '%(b_')} GROUP BY bucket"
        )
    found = Series(buckets(when, grain))
    index = {as_moment(s): i for i, s in enumerate(found.starts)}
    before_index = {as_moment(s): i for i, s in enumerate(buckets(baseline, grain))} if baseline else {}
    for part, moment, name, value, count_ in client.query(statement, parameters=params).result_rows:
        if part == 1:
            i = before_index.get(as_moment(moment))
            if i is not None and i < len(found.baseline):
                found.baseline[i] += value
            continue
        i = index.get(as_moment(moment))
        if i is not None:
            found.by_key[str(name)][i] += value
            found.requests[i] += int(count_)
    return found


def unpriced_by_model(
    client: Client, m: Marts, scope: Scope, *, limit: int, skip: Sequence[str] = ()
) -> list[tuple[str, str, int]]:
    """[(provider, model, answered calls without a price)] of the period, most first: from `requests`, the
    only mart that tells a provider error (billed nothing) from an answered call nobody could price."""
    time_column = "started_at" if scope.period.hourly else "day"
    where, params = scope.condition(time_column=time_column, skip=skip)
    rows = client.query(
        f"SELECT provider, model, count() AS n FROM {m.marts}.requests"
        f" WHERE {where} AND cost_source = 'unpriced' AND NOT is_error"
        " GROUP BY provider, model ORDER BY n DESC, provider, model LIMIT %(limit)s",
        parameters={**params, "limit": limit},
    ).result_rows
    return [(str(provider), str(model), int(n)) for provider, model, n in rows]


def as_moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value, time(), UTC)


def time_series(
    starts: list[datetime],
    spend: dict[str, list[Decimal]],
    requests: list[int] | None = None,
    baseline: tuple[str, list[Decimal]] | None = None,
) -> TimeSeries:
    return TimeSeries(
        buckets=[s.isoformat() for s in starts],
        series=[SeriesPublic(name=name, values=values) for name, values in spend.items()],
        baseline=SeriesPublic(name=baseline[0], values=baseline[1]) if baseline else None,
        requests=requests,
    )


# --- lookups ---------------------------------------------------------------------------------------------


def has_project(client: Client, m: Marts, workspace_id: Any, slug: str) -> bool:
    """Whether the workspace ever spent on `slug` (a project the meters tagged but nobody registered)."""
    return bool(
        client.query(
            f"SELECT 1 FROM {m.marts}.daily_spend WHERE workspace_id = %(ws)s AND project = %(p)s LIMIT 1",
            parameters={"ws": workspace_id, "p": slug},
        ).result_rows
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
