"""Every dashboard JSON twin on built marts: a workspace API key reads its own workspace (200) and is refused
everywhere else (403, nothing of the other workspace in the answer); no API key, no read (401)."""

from __future__ import annotations

from datetime import UTC, datetime

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
