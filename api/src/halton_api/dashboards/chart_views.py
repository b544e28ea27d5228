"""The dashboards' charts, from the objects the pages return (the PDFs draw the same ones)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from markupsafe import Markup

from halton_api import charts
from halton_api.dashboards.filters import Filters, month_end
from halton_api.dashboards.page_models import Ranked, TimeSeries

_LABEL = {"hour": "%H:%M", "day": "%d %b", "week": "w/c %d %b", "month": "%b %Y"}


def bucket_labels(ts: TimeSeries, granularity: str) -> list[str]:
    fmt = _LABEL.get(granularity, "%d %b")
    return [datetime.fromisoformat(b).strftime(fmt) for b in ts.buckets]


def _days(start: date, granularity: str) -> tuple[date, date]:
    """The first and last day a bucket covers."""
    if granularity == "week":
        return start, start + timedelta(days=6)
    if granularity == "month":
        return start, month_end(start) - timedelta(days=1)
    return start, start


def bucket_links(
    ts: TimeSeries, granularity: str, requests_at: tuple[str, Filters] | None
) -> list[str] | None:
    """Per bucket, a link to its requests: `requests_at` is (the requests page's path, the rail's filters),
    and each link keeps the filters with the bucket's days as a custom range."""
    if requests_at is None:
        return None
    path, filters = requests_at
    links = []
    for bucket in ts.buckets:
        first, last = _days(datetime.fromisoformat(bucket).date(), granularity)
        links.append(path + filters.query(range="custom", start=first, end=last))
    return links


def _series(ts: TimeSeries) -> list[charts.Series]:
    return [
        charts.Series(s.name, s.values, charts.colour_for(s.name.lower(), i)) for i, s in enumerate(ts.series)
    ]


def spend_area(ts: TimeSeries, granularity: str, *, title: str, requests_at=None) -> Markup:
    baseline = charts.Series(ts.baseline.name, ts.baseline.values) if ts.baseline else None
    return charts.stacked_area(
        bucket_labels(ts, granularity),
        _series(ts),
        title=title,
        baseline=baseline,
        hrefs=bucket_links(ts, granularity, requests_at),
    )


def spend_columns(
    ts: TimeSeries, granularity: str, *, title: str, requests_at=None, width: int = charts.WIDTH
) -> Markup:
    """`width`: the drawing's own width, near the card's (a narrow card showing a wide drawing shrinks its
    labels below reading size)."""
    return charts.columns(
        bucket_labels(ts, granularity),
        _series(ts),
        title=title,
        hrefs=bucket_links(ts, granularity, requests_at),
        width=width,
    )


def volume(ts: TimeSeries, granularity: str, *, title: str, requests_at=None) -> Markup:
    """Requests per bucket as columns, spend per bucket as a line on its own axis."""
    requests = charts.Series("Requests", ts.requests or [0] * len(ts.buckets), charts.PALETTE[5])
    totals = [sum(s.values[i] for s in ts.series) for i in range(len(ts.buckets))]
    return charts.columns(
        bucket_labels(ts, granularity),
        [requests],
        title=title,
        bars_money=False,
        line=charts.Series("Spend", totals),
        hrefs=bucket_links(ts, granularity, requests_at),
    )


def shares(items: Sequence[Ranked], *, title: str, total=None) -> Markup:
    return charts.share_bars([(item.label, item.spend_usd) for item in items], title=title, total=total)
