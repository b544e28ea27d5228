"""Prompt clusters: requests grouped by request shape (prompt_hash) within the view, to find duplicates, caching
opportunities and accidental loops.

Counts and spend are summed from `marts.prompt_daily_spend` (repeated prompts per day and rail dimension, a
small table whatever the calls) so every rail filter applies; the unfiltered view of a standard period (last 7
or 30 days, this or last month) reads its clusters summed already from `marts.prompt_period_spend`; a 24-hour
view, which cuts days at the hour, sums the period's calls from `marts.requests` instead. Whether a cluster is a loop (the same prompt `loop_min_requests`
times within `loop_window_seconds`, over all history) comes from the `prompt_clusters` mart."""

from __future__ import annotations

from decimal import Decimal

from halton_api.dashboards import spend
from halton_api.dashboards.page_models import ClusterPublic, ClustersPublic
from halton_api.dashboards.view import View
from halton_api.errors import Invalid

KINDS = ("loop", "duplicate")
LIMIT = 200


async def build_clusters(view: View, kind: str | None = None) -> ClustersPublic:
    if kind not in (None, *KINDS):
        raise Invalid(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    scope = view.scope
    time_column = "started_at" if scope.period.hourly else "day"

    # The same aggregates over the calls (a 24-hour view) or over the per-day rows; the first call of a cluster
    # in the view is the earliest (start, uid) either way, so both give the same figures for whole days.
    if scope.period.hourly:
        table, calls, spend_sum, first_cost = (
            "requests",
            "count()",
            "sum(r.cost_usd)",
            "argMin(r.cost_usd, (r.started_at, r.request_uid))",
        )
        first, last, cached = (
            "min(r.started_at)",
            "max(r.started_at)",
            "countIf(ifNull(r.cache_read_tokens, 0) > 0)",
        )
    else:
        table, calls, spend_sum = "prompt_daily_spend", "sum(r.requests)", "sum(r.spend_usd)"
        first_cost = "argMin(r.first_cost_usd, (r.first_started_at, r.first_request_uid))"
        first, last, cached = "min(r.first_started_at)", "max(r.last_started_at)", "sum(r.cached_requests)"

    def query(client, m):
        where, params = scope.condition(time_column=time_column, alias="r", origin=True)
        grouped = (
            f"SELECT r.prompt_hash AS prompt_hash, {calls} AS calls, {spend_sum} AS spend,"
            f" spend - {first_cost} AS repeat_spend, {first} AS first_at, {last} AS last_at,"
            " uniqExact(r.device_id) AS devices, arraySort(groupUniqArray(r.project)) AS projects,"
            f" arraySort(groupUniqArray(r.model)) AS models, {cached} AS cached"
            f" FROM {m.marts}.{table} AS r WHERE {where} AND r.prompt_hash IS NOT NULL"
            " GROUP BY r.prompt_hash HAVING calls >= 2"
        )
        if not scope.period.hourly and not scope.filters.narrowed:
            # Unfiltered, a standard period's clusters are summed already (prompt_period_spend), unless the
            # day has turned since the last build: then the period is not there yet and the days are summed.
            period = (
                f" FROM {m.marts}.prompt_period_spend AS r WHERE r.workspace_id = %(ws)s"
                " AND r.first_day = %(first_day)s AND r.last_day = %(last_day)s"
            )
            if client.query(f"SELECT 1{period} LIMIT 1", parameters=params).result_rows:
                grouped = (
                    "SELECT r.prompt_hash AS prompt_hash, r.requests AS calls, r.spend_usd AS spend,"
                    " r.spend_usd - r.first_cost_usd AS repeat_spend, r.first_started_at AS first_at,"
                    " r.last_started_at AS last_at, r.devices AS devices, r.projects AS projects,"
                    f" r.models AS models, r.cached_requests AS cached{period} AND r.requests >= 2"
                )
        chosen = {
            "loop": " WHERE ifNull(c.is_loop, false)",
            "duplicate": " WHERE NOT ifNull(c.is_loop, false)",
        }
        order = f" ORDER BY repeat_spend DESC, calls DESC, prompt_hash LIMIT {LIMIT}"
        if kind is None:
            # Nothing to choose by the loop flags: the page's clusters are known before the join.
            grouped += order
        # Grouped first, then joined: the loop flags meet a few thousand clusters, not every row of the period.
        return client.query(
            "SELECT g.prompt_hash, g.calls, g.spend, g.repeat_spend, g.first_at, g.last_at, g.devices,"
            " g.projects, g.models, ifNull(c.is_loop, false), ifNull(c.max_requests_in_window, 1), g.cached"
            f" FROM ({grouped}) AS g"
            f" LEFT JOIN (SELECT prompt_hash, is_loop, max_requests_in_window FROM {m.marts}.prompt_clusters"
            "   WHERE workspace_id = %(ws)s) AS c ON g.prompt_hash = c.prompt_hash"
            f"{chosen.get(kind, '')}"
            f" ORDER BY g.repeat_spend DESC, g.calls DESC, g.prompt_hash LIMIT {LIMIT}",
            parameters=params,
        ).result_rows

    rows = await view.reader.run(query)
    clusters = []
    for (prompt_hash, requests, total, repeat, first, last, devices, projects, models, is_loop, window,
         cached) in rows:  # fmt: skip
        clusters.append(
            ClusterPublic(
                prompt_hash=prompt_hash,
                kind="loop" if is_loop else "duplicate",
                requests=int(requests),
                spend_usd=total,
                repeat_spend_usd=repeat,
                first_seen_at=spend.as_moment(first),
                last_seen_at=spend.as_moment(last),
                devices=int(devices),
                projects=list(projects),
                models=list(models),
                max_requests_in_window=int(window),
                cached_share_pct=spend.share(Decimal(int(cached)), Decimal(int(requests))),
            )
        )
    return ClustersPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        kind=kind,
        clusters=clusters,
        totals={
            "clusters": len(clusters),
            "loops": sum(1 for c in clusters if c.kind == "loop"),
            "requests": sum(c.requests for c in clusters),
            "spend_usd": sum((c.spend_usd for c in clusters), Decimal(0)),
            "repeat_spend_usd": sum((c.repeat_spend_usd for c in clusters), Decimal(0)),
        },
    )
