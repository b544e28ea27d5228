"""Hard limits as a paired meter sees them: the limits on `whoami`, and `POST /v1/daemon/limit-events` into the
audit log (once per event, however often the meter resends; bad input answered 422 naming the field)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from fastapi.testclient import TestClient

from halton_api.errors import Invalid
from halton_api.store import hard_limits, projects
from halton_api.store.audit import Actor
from halton_api.testing.factories import bearer, make_device, make_user, make_workspace, run


def _limited(postgres_url: str, workspace, slug: str = "shop", amount: str = "25.00", on: bool = True):
    run(
        postgres_url,
        lambda c: projects.register_projects(
            c, workspace_id=workspace.id, slugs=[slug], actor=Actor.system()
        ),
    )
    with psycopg.connect(postgres_url) as conn:
        project_id = conn.execute(
            "SELECT id FROM projects WHERE slug = %s AND workspace_id = %s", (slug, workspace.id)
        ).fetchone()[0]
    budget = run(
        postgres_url,
        lambda c: projects.set_budget(
            c,
            workspace_id=workspace.id,
            project_id=project_id,
            monthly_amount=Decimal(amount),
            actor=Actor.system(),
        ),
    )
    if on:
        run(
            postgres_url,
            lambda c: hard_limits.set_hard_limit(
                c, workspace_id=workspace.id, budget_id=budget.id, on=True, actor=Actor.system()
            ),
        )
    return budget


def test_whoami_names_each_limited_project_and_says_when_the_spend_is_unknown(
    client: TestClient, postgres_url: str
) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    _limited(postgres_url, workspace, "shop", "25.00")
    _limited(postgres_url, workspace, "api", "10.00", on=False)  # a budget that only alerts
    answer = client.get("/v1/daemon/whoami", headers=bearer(created.token))
    assert answer.status_code == 200
    (limit,) = answer.json()["spend_limits"]
    assert limit["project"] == "shop" and Decimal(limit["budget_usd"]) == Decimal("25.00")
    assert limit["month"] == datetime.now(UTC).strftime("%Y-%m")
    # No marts in this warehouse yet: the cloud cannot tell, says so, and the meter will not block on it.
    assert limit["month_to_date_usd"] is None and limit["spend_as_of"] is None and limit["problem"]


def _event(**overrides) -> dict:
    return {
        "event_uid": str(uuid.uuid4()),
        "kind": "blocked",
        "via": None,
        "project": "shop",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "occurred_at": "2026-12-07T12:00:00+00:00",
        "budget_usd": "25.00",
        "spend_usd": "25.104000000",
    } | overrides


def _audited(postgres_url: str, workspace_id) -> list[tuple]:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT event, actor_type, actor_label, resource_label, details->>'provider', details->>'model',"
            " details->>'via', details->>'at' FROM audit_events WHERE workspace_id = %s AND event LIKE 'budget.call_%%'"
            " ORDER BY id",
            (workspace_id,),
        ).fetchall()


def test_limit_events_land_in_the_audit_log_once(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace, hostname="vk.local")
    blocked, overridden = _event(), _event(kind="override", via="command", provider="openai", model="gpt-4o")
    for _ in range(2):  # the meter resends when it did not see the 2xx
        sent = client.post(
            "/v1/daemon/limit-events", json={"events": [blocked, overridden]}, headers=bearer(created.token)
        )
        assert sent.status_code == 204, sent.text
    rows = _audited(postgres_url, workspace.id)
    assert [r[0] for r in rows] == ["budget.call_blocked", "budget.call_overridden"]
    assert (
        rows[0][1] == "device" and rows[0][3] == "shop" and rows[0][4:6] == ("anthropic", "claude-sonnet-4-5")
    )
    assert rows[1][4:7] == ("openai", "gpt-4o", "command") and rows[1][7].startswith("2026-12-07T12:00:00")


def test_bad_limit_events_are_refused_naming_the_field(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    cases = {
        "events.0.provider": _event(provider="bard"),
        "events.0.event_uid": _event(event_uid="not-a-uuid"),
        "events.0.budget_usd": _event(budget_usd="-1"),
        "events.0.kind": _event(kind="maybe"),
        "via is required": _event(kind="override"),
        "occurred_at needs a UTC offset": _event(occurred_at="2026-12-07T12:00:00"),
        "events.0.surprise": _event(surprise=True),
        "events.0.project: Value error, cannot contain a NUL": _event(project="shop\x00"),
    }
    for named, event in cases.items():
        answer = client.post(
            "/v1/daemon/limit-events", json={"events": [event]}, headers=bearer(created.token)
        )
        assert answer.status_code == 422 and named in answer.json()["detail"], (named, answer.text)
    empty = client.post("/v1/daemon/limit-events", json={"events": []}, headers=bearer(created.token))
    assert empty.status_code == 422 and "events" in empty.json()["detail"]
    assert client.post("/v1/daemon/limit-events", json={"events": [_event()]}).status_code == 401
    assert _audited(postgres_url, workspace.id) == []


def test_only_a_projects_budget_can_be_a_hard_limit(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    whole = run(
        postgres_url,
        lambda c: projects.set_budget(
            c, workspace_id=workspace.id, project_id=None, monthly_amount=Decimal(500), actor=Actor.system()
        ),
    )
    with pytest.raises(Invalid, match="only a project's budget"):
        run(
            postgres_url,
            lambda c: hard_limits.set_hard_limit(
                c, workspace_id=workspace.id, budget_id=whole.id, on=True, actor=Actor.system()
            ),
        )
