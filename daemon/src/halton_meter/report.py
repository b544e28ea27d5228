"""Spend reports read straight from ``db.sqlite``: by project, model, provider and day (by default), and
by the repository, git branch, ticket and tool the calls came from (``--by``). Works offline.

Counting rules, the same in tables, JSON and CSV:

* ``cost_usd`` sums the calls that have a price; it is ``None`` (shown as ``—``, never ``$0``) when no
  call of the group has one;
* ``unpriced_calls`` counts answered calls (HTTP 1xx-3xx) without a price: an unknown model, a stream
  cut before its usage, an endpoint we cannot read;
* ``errors`` counts calls the provider refused or failed (HTTP 4xx/5xx) and calls that got no response
  at all; providers do not bill those, so they are not "unpriced";
* ``unpriced`` says which models the unpriced calls are of, and what would price them: a catalogue that
  knows the model (``rates update``), a re-price once the catalogue in force knows it, or nothing when the
  tokens are unknown.

Days are local calendar days; the period's ``to`` is exclusive.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from halton_meter.store import nanos_to_usd, ts

if TYPE_CHECKING:
    from halton_meter.catalogue import Catalogue

PERIODS = ("today", "yesterday", "7d", "30d", "this-month", "last-month", "all")
DIMENSIONS = {
    "project": "project",
    "model": "COALESCE(model_served, model_requested, '(unknown)')",
    "provider": "provider",
    "day": "date(started_at, 'localtime')",
    # Where calls came from (halton_meter.origin); calls the meter could not place are one "(unknown)" group.
    "repository": "COALESCE(repository, '(unknown)')",
    "branch": "COALESCE(branch, '(unknown)')",
    "ticket": "COALESCE(ticket, '(none)')",
    "tool": "COALESCE(tool, '(unknown)')",
}
DEFAULT_DIMENSIONS = ("project", "model", "provider", "day")


class PeriodError(ValueError):
    """A period the user asked for does not make sense; the message says how to ask."""


@dataclass(frozen=True)
class Period:
    name: str
    start: datetime  # local, aware, inclusive
    end: datetime  # local, aware, exclusive

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "from": self.start.isoformat(), "to": self.end.isoformat()}

    @property
    def label(self) -> str:
        last = (self.end - timedelta(microseconds=1)).date()
        first = self.start.date()
        return f"{self.name} ({first})" if first == last else f"{self.name} ({first} → {last})"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).astimezone()


def parse_period(
    name: str | None, start: date | None = None, end: date | None = None, *, today: date | None = None
) -> Period:
    """A named period, or ``--from``/``--to`` dates (both inclusive days; either may be left out)."""
    today = today or datetime.now().astimezone().date()
    if start is not None or end is not None:
        if name not in (None, "today"):
            raise PeriodError("give either a period name or --from/--to, not both")
        first = start or date(1970, 1, 2)
        last = end or today
        if last < first:
            raise PeriodError(f"--to {last} is before --from {first}")
        label = f"{start or 'start'}..{end or 'today'}"
        return Period(label, _midnight(first), _midnight(last + timedelta(days=1)))
    name = name or "today"
    tomorrow = _midnight(today + timedelta(days=1))
    if name == "today":
        return Period(name, _midnight(today), tomorrow)
    if name == "yesterday":
        return Period(name, _midnight(today - timedelta(days=1)), _midnight(today))
    if name in ("7d", "30d"):
        days = int(name[:-1])
        return Period(name, _midnight(today - timedelta(days=days - 1)), tomorrow)
    if name == "this-month":
        first = today.replace(day=1)
        return Period(name, _midnight(first), tomorrow)
    if name == "last-month":
        first_this = today.replace(day=1)
        first_last = (first_this - timedelta(days=1)).replace(day=1)
        return Period(name, _midnight(first_last), _midnight(first_this))
    if name == "all":
        return Period(name, _midnight(date(1970, 1, 2)), tomorrow)
    raise PeriodError(f"unknown period {name!r}: use one of {', '.join(PERIODS)}, or --from/--to YYYY-MM-DD")


@dataclass
class Group:
    key: str
    calls: int = 0
    errors: int = 0
    unpriced_calls: int = 0
    cost_usd: Decimal | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["cost_usd"] = str(self.cost_usd) if self.cost_usd is not None else None
        return document


@dataclass(frozen=True)
class UnpricedModel:
    """Answered calls of one model without a price, and why: ``in_catalogue`` says whether the catalogue in
    force has a price for the model; ``with_tokens`` counts the calls whose tokens are known (a price can
    be computed for those); ``reason`` is the most frequent reason the meter recorded."""

    provider: str
    model: str
    calls: int
    with_tokens: int
    reason: str | None
    catalogue_version: str
    in_catalogue: bool

    def line(self) -> str:
        """``3 calls of claude-opus-9 unpriced (no price in catalogue …); run `halton-meter rates update```."""
        head = f"{self.calls} call{'s' if self.calls != 1 else ''} of {self.model} unpriced"
        if not self.in_catalogue:
            return f"{head} (no price in catalogue {self.catalogue_version}); run `halton-meter rates update`"
        why = f"{head} ({self.reason or 'reason not recorded'})"
        if self.with_tokens:
            return (
                f"{why}; catalogue {self.catalogue_version} prices {self.model}: run `halton-meter reprice`"
            )
        return why

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.line()}


@dataclass
class SpendReport:
    period: Period
    totals: Group
    groups: dict[str, list[Group]] = field(default_factory=dict)
    unpriced: list[UnpricedModel] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "totals": self.totals.to_json(),
            **{f"by_{dim}": [g.to_json() for g in groups] for dim, groups in self.groups.items()},
            "unpriced": [item.to_json() for item in self.unpriced],
        }


_AGGREGATES = """
    COUNT(*) AS calls,
    SUM(CASE WHEN status_code IS NULL OR status_code >= 400 THEN 1 ELSE 0 END) AS errors,
    SUM(CASE WHEN cost_nusd IS NULL AND status_code < 400 THEN 1 ELSE 0 END) AS unpriced_calls,
    SUM(cost_nusd) AS cost_nusd,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens,
    COALESCE(SUM(cache_read_tokens), 0) AS cache_read_tokens,
    COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens
"""


def _group(key: str, row: sqlite3.Row) -> Group:
    return Group(
        key=key,
        calls=row["calls"] or 0,
        errors=row["errors"] or 0,
        unpriced_calls=row["unpriced_calls"] or 0,
        cost_usd=nanos_to_usd(row["cost_nusd"]),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
    )


def spend_report(
    conn: sqlite3.Connection, period: Period, dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
) -> SpendReport:
    bounds = (ts(period.start), ts(period.end))
    where = "WHERE started_at >= ? AND started_at < ?"
    totals = _group("total", conn.execute(f"SELECT {_AGGREGATES} FROM requests {where}", bounds).fetchone())
    report = SpendReport(period=period, totals=totals)
    for dim in dimensions:
        expression = DIMENSIONS[dim]
        order = "key" if dim == "day" else "COALESCE(cost_nusd, -1) DESC, calls DESC, key"
        rows = conn.execute(
            f"SELECT {expression} AS key, {_AGGREGATES} FROM requests {where} GROUP BY key ORDER BY {order}",
            bounds,
        ).fetchall()
        report.groups[dim] = [_group(str(r["key"]), r) for r in rows]
    return report


_UNPRICED = """
    SELECT provider, COALESCE(model_served, model_requested, '(unknown)') AS model, unpriced_reason,
           COUNT(*) AS calls,
           SUM(CASE WHEN input_tokens IS NOT NULL AND output_tokens IS NOT NULL THEN 1 ELSE 0 END) AS with_tokens
    FROM requests
    WHERE started_at >= ? AND started_at < ? AND cost_nusd IS NULL AND status_code < 400
    GROUP BY provider, model, unpriced_reason
"""


def unpriced_models(conn: sqlite3.Connection, period: Period, catalogue: Catalogue) -> list[UnpricedModel]:
    """The period's unpriced answered calls per provider and model, most calls first, judged against
    ``catalogue`` (the one in force: ``catalogue.active_catalogue``)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in conn.execute(_UNPRICED, (ts(period.start), ts(period.end))):
        item = found.setdefault(
            (row["provider"], row["model"]), {"calls": 0, "with_tokens": 0, "reasons": {}}
        )
        item["calls"] += row["calls"]
        item["with_tokens"] += row["with_tokens"]
        if row["unpriced_reason"]:
            item["reasons"][row["unpriced_reason"]] = row["calls"]
    out = [
        UnpricedModel(
            provider=provider,
            model=model,
            calls=item["calls"],
            with_tokens=item["with_tokens"],
            reason=min(item["reasons"], key=lambda r: (-item["reasons"][r], r)) if item["reasons"] else None,
            catalogue_version=catalogue.version,
            in_catalogue=catalogue.find(provider, model) is not None,
        )
        for (provider, model), item in found.items()
    ]
    return sorted(out, key=lambda u: (-u.calls, u.provider, u.model))


def capture_error_counts(conn: sqlite3.Connection, day: date | None = None) -> dict[str, int]:
    """Failures the daemon counted on a local day (default today), by kind."""
    day = day or datetime.now().astimezone().date()
    rows = conn.execute(
        "SELECT kind, count FROM capture_errors WHERE day = ? ORDER BY kind", (day.isoformat(),)
    )
    return {r["kind"]: r["count"] for r in rows}


def format_usd(value: Decimal | None) -> str:
    """``$12.34``, ``$0.0123``: enough digits to see small calls; ``—`` for "no price", never $0."""
    if value is None:
        return "—"
    if value == 0:
        return "$0.00"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = max(4, -value.adjusted() + 3)
    return f"${value:.{min(digits, 9)}f}"


CSV_COLUMNS = (
    "dimension",
    "key",
    "calls",
    "errors",
    "unpriced_calls",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
)


def csv_rows(report: SpendReport) -> list[list[str]]:
    def line(dimension: str, group: Group) -> list[str]:
        return [
            dimension,
            "" if dimension == "total" else group.key,
            str(group.calls),
            str(group.errors),
            str(group.unpriced_calls),
            "" if group.cost_usd is None else str(group.cost_usd),
            str(group.input_tokens),
            str(group.output_tokens),
            str(group.cache_read_tokens),
            str(group.reasoning_tokens),
        ]

    rows = [line("total", report.totals)]
    for dim, groups in report.groups.items():
        rows.extend(line(dim, g) for g in groups)
    return rows
