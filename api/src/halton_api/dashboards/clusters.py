"""Prompt clusters: requests grouped by request shape (prompt_hash) within the view, to find duplicates, caching
opportunities and accidental loops.

Counts and spend are aggregated live from `marts.requests` so every rail filter applies; whether a cluster is a
loop (the same prompt `loop_min_requests` times within `loop_window_seconds`, over all history) comes from the
`prompt_clusters` mart."""

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

    def query(client, m):
        where, params = scope.condition(time_column=time_column, alias="r", origin=True)
        having = ""
        if kind == "loop":
            having = " AND any(c.is_loop)"
        elif kind == "duplicate":
            having = " AND NOT any(ifNull(c.is_loop, false))"
        return client.query(
            "SELECT r.prompt_hash AS prompt_hash, count() AS requests, sum(r.cost_usd) AS spend,"
            " sum(r.cost_usd) - argMin(r.cost_usd, (r.started_at, r.request_uid)) AS repeat_spend,"
            " min(r.started_at), max(r.started_at), uniqExact(r.device_id), arraySort(groupUniqArray(r.project)),"
            " arraySort(groupUniqArray(r.model)), any(ifNull(c.is_loop, false)),"
            " any(ifNull(c.max_requests_in_window, 1)), countIf(ifNull(r.cache_read_tokens, 0) > 0)"
            f" FROM {m.marts}.requests AS r"
            f" LEFT JOIN (SELECT prompt_hash, is_loop, max_requests_in_window FROM {m.marts}.prompt_clusters"
            "   WHERE workspace_id = %(ws)s) AS c ON r.prompt_hash = c.prompt_hash"
            f" WHERE {where} AND r.prompt_hash IS NOT NULL"
            f" GROUP BY r.prompt_hash HAVING requests >= 2{having}"
            f" ORDER BY repeat_spend DESC, requests DESC, prompt_hash LIMIT {LIMIT}",
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
