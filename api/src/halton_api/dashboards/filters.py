"""The filter rail: what a dashboard's URL query says (date range, provider, model, project, device, cost
center, and where calls came from: branch, ticket, tool), parsed once, echoed back into links, and turned into
one SQL condition every query on the page uses.

Branch, ticket and tool are facts of each call, not of a day's spend: only views that read per-call or
per-branch marts (`requests`, `branch_spend`) can apply them (`Scope.condition(origin=True)`); any other view
asked for them answers 422 naming the view that can (never figures that silently ignore a filter), and the
navigation drops them (`Filters.without_origin`).

State lives only in the URL (`?range=7d&provider=openai&project=a&project=b`), so a filtered view is
shareable and the JSON twin of a page takes exactly the same parameters.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from halton_api.dashboards.model_names import DATED_SUFFIX
from halton_api.errors import Invalid

RANGES: dict[str, str] = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "this_month": "This month",
    "last_month": "Last month",
    "custom": "Custom range",
}
DEFAULT_RANGE = "30d"
PROVIDERS: dict[str, str] = {"anthropic": "Anthropic", "openai": "OpenAI", "gemini": "Gemini", "xai": "xAI"}
UNASSIGNED = "unassigned"  # the cost-center filter value for projects in no cost center
MAX_CUSTOM_DAYS = 731
MAX_VALUES = 50  # per multi-select parameter
MAX_VALUE_LENGTH = 200
# Query parameters of the rail; pages may add their own (grain, q, …), which links keep as they are.
RAIL_PARAMETERS = (
    "range", "from", "to", "provider", "model", "project", "device", "cost_center", "branch", "ticket", "tool"
)  # fmt: skip
# Where calls came from (the meter's halton_meter.origin), and their columns in the marts that hold them.
ORIGIN_PARAMETERS = {"branch": "branch", "ticket": "ticket", "tool": "tool"}


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval [start, end) and how finely to chart it."""

    start: datetime
    end: datetime
    label: str
    hourly: bool = False
    # A calendar month from its first day, whole or cut at today (month to date): it compares with the same
    # days of the month before rather than with the days just before it.
    calendar_month: bool = False

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last day the period touches (inclusive)."""
        return (self.end - timedelta(microseconds=1)).date()

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def describe(self) -> str:
        """The dates it covers, as people read them."""
        if self.hourly:
            return f"{self.start:%d %b %H:%M} \u2013 {self.end:%d %b %H:%M} UTC"
        if self.first_day == self.last_day:
            return f"{self.first_day:%d %b %Y}"
        return f"{self.first_day:%d %b %Y} \u2013 {self.last_day:%d %b %Y}"

    def buckets(self) -> list[datetime]:
        """Every chart bucket of the period: hours for a 24-hour period, else days (as midnight datetimes)."""
        step = timedelta(hours=1) if self.hourly else timedelta(days=1)
        first = self.start if self.hourly else datetime.combine(self.first_day, time(), UTC)
        return [first + i * step for i in range(int((self.end - first) / step + 0.999999))]

    def previous(self) -> Period:
        """The one definition of "previous period" every page and report compares with: a whole calendar
        month against the whole month before; a month to date against the same days of the month before (cut at
        that month's end); any other period against the period of the same length just before it."""
        if self.calendar_month:
            first = previous_month(self.first_day)
            last_of_month = month_end(first) - timedelta(days=1)
            if self.last_day == month_end(self.first_day) - timedelta(days=1):
                return month_period(first, f"the whole of {first:%B}", _midnight(month_end(first)))
            last = min(first + timedelta(days=self.days - 1), last_of_month)
            return month_period(first, f"the same days of {first:%B}", _midnight(last + timedelta(days=1)))
        length = self.end - self.start
        if not self.hourly:
            length = timedelta(days=self.days)
        start = (self.start if self.hourly else _midnight(self.first_day)) - length
        span = "24 hours" if self.hourly else f"{self.days} day{'s' if self.days != 1 else ''}"
        return Period(start=start, end=start + length, label=f"the {span} before", hourly=self.hourly)

    def compared_with(self) -> str:
        """What `previous()` is, in words with its dates, for the page to say."""
        before = self.previous()
        return f"{before.label} ({before.describe()})"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(day: date) -> date:
    """The first day of the month before `day`'s month."""
    return (month_start(day) - timedelta(days=1)).replace(day=1)


def month_end(day: date) -> date:
    """The first day of the month after `day`'s month."""
    return month_start(day) + timedelta(days=calendar.monthrange(day.year, day.month)[1])


def month_period(first: date, label: str, now: datetime) -> Period:
    """A calendar month, cut at now when it is the current one."""
    end = min(_midnight(month_end(first)), now)
    return Period(start=_midnight(first), end=end, label=label, calendar_month=True)


@dataclass(frozen=True)
class Filters:
    """The rail's state as the URL gave it (validated; nothing resolved against the stores yet)."""

    range: str = DEFAULT_RANGE
    start: date | None = None  # custom range, inclusive
    end: date | None = None  # custom range, inclusive
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    devices: tuple[UUID, ...] = ()
    cost_centers: tuple[str, ...] = ()  # cost center ids as text, or UNASSIGNED
    branches: tuple[str, ...] = ()
    tickets: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # the page's own parameters

    @classmethod
    def from_query(cls, params: Mapping[str, Any] | Iterable[tuple[str, str]]) -> Filters:
        """Parse a query string's pairs; raises `Invalid` naming the parameter that is wrong."""
        pairs = list(params.multi_items() if hasattr(params, "multi_items") else _pairs(params))
        values: dict[str, list[str]] = {}
        extra: list[tuple[str, str]] = []
        for key, value in pairs:
            if key in RAIL_PARAMETERS:
                for part in value.split(","):
                    if part.strip():
                        values.setdefault(key, []).append(part.strip())
            else:
                extra.append((key, value))
        explicit = _one(values, "range")
        range_ = explicit or DEFAULT_RANGE
        if range_ not in RANGES:
            raise Invalid(f"range: {range_!r} is not one of {', '.join(RANGES)}")
        start, end = _day(values, "from"), _day(values, "to")
        if explicit not in (None, "custom"):
            start = end = None  # dates left over in a form whose range was then switched: not a custom range
        elif range_ == "custom" or start or end:
            if start is None or end is None:
                raise Invalid("from, to: a custom range needs both dates, as YYYY-MM-DD")
            if end < start:
                raise Invalid(f"to: {end} is before from ({start})")
            if (end - start).days >= MAX_CUSTOM_DAYS:
                raise Invalid(f"to: a custom range spans at most {MAX_CUSTOM_DAYS} days")
            range_ = "custom"
        providers = _many(values, "provider")
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown:
            raise Invalid(f"provider: {unknown[0]!r} is not one of {', '.join(PROVIDERS)}")
        devices = []
        for text in _many(values, "device"):
            try:
                devices.append(UUID(text))
            except ValueError:
                raise Invalid(f"device: {text!r} is not a device id") from None
        cost_centers = _many(values, "cost_center")
        for text in cost_centers:
            if text != UNASSIGNED:
                try:
                    UUID(text)
                except ValueError:
                    raise Invalid(
                        f"cost_center: {text!r} is not a cost center id or {UNASSIGNED!r}"
                    ) from None
        return cls(
            range=range_,
            start=start,
            end=end,
            providers=providers,
            models=_many(values, "model"),
            projects=_many(values, "project"),
            devices=tuple(devices),
            cost_centers=cost_centers,
            branches=_many(values, "branch"),
            tickets=_many(values, "ticket"),
            tools=_many(values, "tool"),
            extra=tuple(extra),
        )

    def period(self, now: datetime) -> Period:
        today = now.date()
        match self.range:
            case "24h":
                end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
                return Period(start=end - timedelta(hours=24), end=end, label=RANGES["24h"], hourly=True)
            case "7d" | "30d":
                days = 7 if self.range == "7d" else 30
                end = _midnight(today + timedelta(days=1))
                return Period(start=end - timedelta(days=days), end=end, label=RANGES[self.range])
            case "this_month":
                return month_period(
                    month_start(today), RANGES["this_month"], _midnight(today + timedelta(days=1))
                )
            case "last_month":
                return month_period(previous_month(today), RANGES["last_month"], now)
            case _:
                assert self.start is not None and self.end is not None
                return Period(
                    start=_midnight(self.start),
                    end=_midnight(self.end + timedelta(days=1)),
                    label=RANGES["custom"],
                )

    @property
    def narrowed(self) -> bool:
        """Whether anything but the date range is filtered."""
        return bool(
            self.providers
            or self.models
            or self.projects
            or self.devices
            or self.cost_centers
            or self.by_origin
        )

    @property
    def by_origin(self) -> bool:
        """Whether branch, ticket or tool is filtered (only views over per-call marts can apply them)."""
        return bool(self.branches or self.tickets or self.tools)

    def pairs(self, *, with_extra: bool = True) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        if self.range != DEFAULT_RANGE:
            pairs.append(("range", self.range))
        if self.range == "custom" and self.start and self.end:
            pairs += [("from", self.start.isoformat()), ("to", self.end.isoformat())]
        pairs += [("provider", p) for p in self.providers]
        pairs += [("model", m) for m in self.models]
        pairs += [("project", p) for p in self.projects]
        pairs += [("device", str(d)) for d in self.devices]
        pairs += [("cost_center", c) for c in self.cost_centers]
        pairs += [("branch", b) for b in self.branches]
        pairs += [("ticket", t) for t in self.tickets]
        pairs += [("tool", t) for t in self.tools]
        if with_extra:
            pairs += list(self.extra)
        return pairs

    def query(self, *, with_extra: bool = False, **changes: Any) -> str:
        """`?…` for a link that keeps the rail (and, with `with_extra`, the page's own parameters)."""
        filters = replace(self, **changes) if changes else self
        encoded = urlencode(filters.pairs(with_extra=with_extra))
        return f"?{encoded}" if encoded else ""

    def with_extra(self, **values: str | None) -> str:
        """`?…` keeping the rail and the page's parameters, with `values` set (None removes one)."""
        kept = [(k, v) for k, v in self.extra if k not in values]
        kept += [(k, v) for k, v in values.items() if v is not None]
        encoded = urlencode(self.pairs(with_extra=False) + kept)
        return f"?{encoded}" if encoded else ""

    def without_origin(self) -> str:
        """`?…` keeping the rail but branch, ticket and tool: links to views that cannot filter by them."""
        return self.query(branches=(), tickets=(), tools=())

    def extra_value(self, name: str) -> str | None:
        return next((v for k, v in self.extra if k == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "range": self.range,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "provider": list(self.providers),
            "model": list(self.models),
            "project": list(self.projects),
            "device": [str(d) for d in self.devices],
            "cost_center": list(self.cost_centers),
            "branch": list(self.branches),
            "ticket": list(self.tickets),
            "tool": list(self.tools),
        }


def _pairs(params: Mapping[str, Any] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in params.items():
            for item in value if isinstance(value, list | tuple) else [value]:
                out.append((key, str(item)))
        return out
    return list(params)


def _one(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key, [])
    if len(found) > 1:
        raise Invalid(f"{key}: give it once (got {len(found)} values)")
    return found[0] if found else None


def _many(values: dict[str, list[str]], key: str) -> tuple[str, ...]:
    found = list(dict.fromkeys(values.get(key, [])))
    if len(found) > MAX_VALUES:
        raise Invalid(f"{key}: at most {MAX_VALUES} values")
    for value in found:
        if len(value) > MAX_VALUE_LENGTH:
            raise Invalid(f"{key}: a value is longer than {MAX_VALUE_LENGTH} characters")
    return tuple(found)


def _day(values: dict[str, list[str]], key: str) -> date | None:
    text = _one(values, key)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{key}: {text!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Scope:
    """Filters resolved against the control plane, ready to become SQL over the spend marts.

    Cost centers are resolved here to project slugs (the control plane owns the assignment, so a project
    moved to another cost center is filtered by its new one at once, without waiting for the marts).
    """

    workspace_id: UUID
    filters: Filters
    period: Period
    now: datetime
    cost_center_projects: tuple[str, ...] | None = None  # projects of the chosen cost centers
    assigned_projects: tuple[str, ...] = ()  # every project in some cost center (for UNASSIGNED)

    def condition(
        self,
        *,
        time_column: str | None = "day",
        period: Period | None = None,
        alias: str = "",
        skip: Sequence[str] = (),
        origin: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """`WHERE …` text and its parameters for a table with (workspace_id, day, provider, model, project,
        device_id) and `time_column` (`day`, or `hour`/`started_at` for a 24-hour period); `period` overrides
        the rail's; `skip` leaves out dimensions by name (e.g. "project" on a page already about one project);
        `origin` for a table that also has (branch, ticket, tool): the rail's choices of those apply too."""
        p = f"{alias}." if alias else ""
        parts = [f"{p}workspace_id = %(ws)s"]
        params: dict[str, Any] = {"ws": self.workspace_id}
        when = period or self.period
        if time_column == "day":
            parts.append(f"{p}day BETWEEN %(first_day)s AND %(last_day)s")
            params.update(first_day=when.first_day, last_day=when.last_day)
        elif time_column is not None:
            # The day as well: tables are sorted by (workspace_id, day, …), so this is what prunes the read.
            parts.append(
                f"{p}day BETWEEN %(first_day)s AND %(last_day)s"
                f" AND {p}{time_column} >= %(start)s AND {p}{time_column} < %(end)s"
            )
            params.update(
                first_day=when.first_day,
                last_day=when.last_day,
                start=naive(when.start),
                end=naive(when.end),
            )
        f = self.filters
        if f.models and "model" not in skip:
            # A model matches its dated snapshots too (the rail folds them under it).
            parts.append(
                f"({p}model IN %(models)s OR replaceRegexpOne({p}model, '{DATED_SUFFIX}', '') IN %(models)s)"
            )
            params["models"] = tuple(f.models)
        for name, column, chosen in (
            ("provider", "provider", f.providers),
            ("project", "project", f.projects),
            ("device", "device_id", f.devices),
        ):
            if chosen and name not in skip:
                parts.append(f"{p}{column} IN %({name}s)s")
                params[f"{name}s"] = tuple(chosen)
        if f.by_origin and not origin:
            raise Invalid(
                "branch, ticket, tool: this view sums spend by day and cannot tell where calls came from; "
                "the Branches & tickets view (/{workspace}/branches) and Clusters filter by them"
            )
        if origin:
            for name, chosen in (("branch", f.branches), ("ticket", f.tickets), ("tool", f.tools)):
                if chosen and name not in skip:
                    # NULL (not seen) in per-call marts, '' in branch_spend: ifNull matches both the same way.
                    parts.append(f"ifNull({p}{ORIGIN_PARAMETERS[name]}, '') IN %({name}s)s")
                    params[f"{name}s"] = tuple(chosen)
        if self.cost_center_projects is not None and "cost_center" not in skip:
            alternatives = []
            if self.cost_center_projects:
                alternatives.append(f"{p}project IN %(cc_projects)s")
                params["cc_projects"] = self.cost_center_projects
            if UNASSIGNED in f.cost_centers:
                if self.assigned_projects:
                    alternatives.append(f"{p}project NOT IN %(assigned_projects)s")
                    params["assigned_projects"] = self.assigned_projects
                else:
                    alternatives.append("1")
            parts.append(f"({' OR '.join(alternatives)})" if alternatives else "0")
        return " AND ".join(parts), params


def naive(moment: datetime) -> datetime:
    """ClickHouse DateTime parameters go as naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)
