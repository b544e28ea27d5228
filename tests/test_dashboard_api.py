"""Every dashboard JSON twin on built marts: a workspace API key reads its own workspace (200) and is refused
everywhere else (403, nothing of the other workspace in the answer); no API key, no read (401)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from halton_api.models import WorkspacePublic
from halton_api.testing.factories import bearer, declared_routes, make_api_key, make_user, make_workspace


def samples(built_demo) -> dict[str, str]:
    """A real value for each path parameter of the twins, from the demo's marts."""
    (project,) = built_demo.query(
        "SELECT project FROM {marts}.daily_spend WHERE workspace_id = '{ws}' LIMIT 1"
    )[0]
    (uid,) = built_demo.query("SELECT request_uid FROM {marts}.requests WHERE workspace_id = '{ws}' LIMIT 1")[
        0
    ]
    (recommendation,) = built_demo.query(
        "SELECT any(recommendation_id) FROM {marts}.recommendations WHERE workspace_id = '{ws}'"
    )[0]
    return {
        "{slug}": project,
        "{request_uid}": str(uid),
        "{period}": datetime.now(UTC).strftime("%Y-%m"),
        "{recommendation_id}": str(recommendation),
    }


def twins() -> list[str]:
    return sorted(
        route.path
        for route in declared_routes()
        if route.path.startswith("/v1/{workspace}")
        and "GET" in route.methods
        and "{job_id}" not in route.path
    )


def fill(path: str, slug: str, values: dict[str, str]) -> str:
    path = path.replace("{workspace}", slug).replace("{device_id}", "00000000-0000-4000-8000-000000000009")
    for placeholder, value in values.items():
        path = path.replace(placeholder, value)
    return path


def test_api_keys_read_their_own_dashboards_only(demo_cloud, built_demo) -> None:
    demo = WorkspacePublic(
        id=built_demo.workspace_id, slug=built_demo.slug, name=built_demo.demo.workspace.name
    )
    own_key = make_api_key(built_demo.database_url, workspace=demo).key
    other = make_workspace(
        built_demo.database_url, owner=make_user(built_demo.database_url), name="Elsewhere"
    )
    other_key = make_api_key(built_demo.database_url, workspace=other).key
    values = samples(built_demo)
    client = httpx.Client(base_url=demo_cloud.url, timeout=60)
    dashboards = [p for p in twins() if "{device_id}" not in p]
    assert {"/v1/{workspace}/overview", "/v1/{workspace}/projects/{slug}/view", "/v1/{workspace}/traces/{request_uid}",
            "/v1/{workspace}/clusters", "/v1/{workspace}/cost-center-spend"} <= set(dashboards)  # fmt: skip
    for path in dashboards:
        url = fill(path, built_demo.slug, values)
        own = client.get(url, headers=bearer(own_key))
        assert own.status_code == 200, f"{url}: {own.status_code} {own.text[:300]}"
        refused = client.get(url, headers=bearer(other_key))
        assert refused.status_code == 403, f"{url}: {refused.status_code}"
        assert str(built_demo.workspace_id) not in refused.text
        assert client.get(url).status_code == 401
        # The other key cannot reach the demo's rows through its own workspace's address either.
        through_other = client.get(fill(path, other.slug, values), headers=bearer(other_key))
        assert through_other.status_code in (200, 404), f"{path}: {through_other.status_code}"
        assert str(built_demo.workspace_id) not in through_other.text


def test_clusters_from_the_daily_prompt_mart_are_the_calls_grouped(demo_cloud, built_demo) -> None:
    """The clusters twin sums `prompt_daily_spend` for whole days, or reads a standard period's sums from
    `prompt_period_spend` when unfiltered: the same clusters, figures and order as grouping the period's calls
    (marts.requests) by prompt, with and without rail filters."""
    demo = WorkspacePublic(
        id=built_demo.workspace_id, slug=built_demo.slug, name=built_demo.demo.workspace.name
    )
    key = make_api_key(built_demo.database_url, workspace=demo).key
    client = httpx.Client(base_url=demo_cloud.url, timeout=60, headers=bearer(key))
    today = datetime.now(UTC).date()
    for params, where in (
        ({}, ""),
        ({"range": "last_month"}, ""),
        ({"range": "this_month", "kind": "duplicate"}, ""),
        ({"range": "7d", "provider": "anthropic"}, " AND provider = 'anthropic'"),
        (
            {"from": (today - timedelta(days=89)).isoformat(), "to": today.isoformat(), "kind": "loop"},
            "",
        ),
    ):
        answer = client.get(f"/v1/{built_demo.slug}/clusters", params=params)
        assert answer.status_code == 200, answer.text[:300]
        body = answer.json()
        start, end = body["period"]["start"], body["period"]["end"]
        expected = built_demo.query(
            "SELECT r.prompt_hash AS h, count() AS n, sum(r.cost_usd) - argMin(r.cost_usd, (r.started_at,"
            " r.request_uid)) AS repeat, min(r.started_at), max(r.started_at), uniqExact(r.device_id),"
            " countIf(ifNull(r.cache_read_tokens, 0) > 0), sum(r.cost_usd)"
            " FROM {marts}.requests AS r LEFT JOIN (SELECT prompt_hash, is_loop FROM {marts}.prompt_clusters) AS c"
            " ON r.prompt_hash = c.prompt_hash"
            " WHERE r.workspace_id = '{ws}' AND r.prompt_hash IS NOT NULL"
            " AND r.day >= toDate(parseDateTime64BestEffort(%(start)s)) AND r.day < toDate(parseDateTime64BestEffort(%(end)s))"
            + where
            + " GROUP BY h HAVING n >= 2"
            + {"loop": " AND any(c.is_loop)", "duplicate": " AND NOT any(ifNull(c.is_loop, false))"}.get(
                params.get("kind", ""), ""
            )
            + " ORDER BY repeat DESC, n DESC, h LIMIT 200",
            start=start,
            end=end,
        )
        assert expected, f"{params}: the demo repeats prompts in this view"
        got = [
            (
                c["prompt_hash"],
                c["requests"],
                Decimal(c["repeat_spend_usd"]),
                c["devices"],
                Decimal(c["spend_usd"]),
            )
            for c in body["clusters"]
        ]
        assert got == [(h, n, repeat, devices, total) for h, n, repeat, _, _, devices, _, total in expected]
        first = body["clusters"][0]
        assert datetime.fromisoformat(first["first_seen_at"]) == expected[0][3].replace(tzinfo=UTC)
        assert datetime.fromisoformat(first["last_seen_at"]) == expected[0][4].replace(tzinfo=UTC)
    # Every provider chosen filters nothing out but sums the days: the same answer as the period's sums.
    every_provider = client.get(
        f"/v1/{built_demo.slug}/clusters", params={"provider": "anthropic,openai,gemini,xai"}
    )
    summed = client.get(f"/v1/{built_demo.slug}/clusters")
    assert every_provider.json()["clusters"] == summed.json()["clusters"]
