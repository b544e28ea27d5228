"""Projects (auto-registered), cost centers and budgets: edited on the page, read from the JSON twin."""

from __future__ import annotations

from decimal import Decimal

import psycopg
from fastapi.testclient import TestClient

from halton_api.testing.factories import (
    Browser,
    batch,
    bearer,
    make_api_key,
    make_device,
    make_user,
    make_workspace,
)


def test_projects_register_from_batches_and_are_edited_with_money_as_decimal(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    device = make_device(postgres_url, workspace=workspace)
    body = batch(device.device.machine_id, rows=4)
    body["rows"][0]["project"] = "client-x/api"
    assert client.post("/v1/requests/batch", json=body, headers=bearer(device.token)).status_code == 200

    key = make_api_key(postgres_url, workspace=workspace).key
    listed = {p["slug"]: p for p in client.get(f"/v1/{workspace.slug}/projects", headers=bearer(key)).json()}
    assert set(listed) == {"acme/app", "client-x/api"}

    admin = Browser(client, postgres_url, owner)
    settings = f"/{workspace.slug}/settings"
    assert admin.post(f"{settings}/cost-centers", {"name": "Client Work"}).status_code == 303
    assert admin.post(f"{settings}/cost-centers", {"name": "Client Work"}).status_code == 409
    centers = client.get(f"/v1/{workspace.slug}/cost-centers", headers=bearer(key)).json()
    project_id = listed["client-x/api"]["id"]
    saved = admin.post(
        f"{settings}/projects/{project_id}",
        {
            "name": "Client X API",
            "hourly_rate": "149.99",
            "cost_center_id": centers[0]["id"],
            "archived": "true",
        },
    )
    assert saved.status_code == 303
    assert (
        admin.post(f"{settings}/projects/{project_id}", {"name": "x", "hourly_rate": "1.234"}).status_code
        == 422
    )
    assert admin.post(f"{settings}/budgets", {"monthly_amount": "2500"}).status_code == 303
    assert (
        admin.post(f"{settings}/budgets", {"monthly_amount": "300.50", "project_id": project_id}).status_code
        == 303
    )
    assert admin.post(f"{settings}/budgets", {"monthly_amount": "2750.00"}).status_code == 303

    project = next(
        p
        for p in client.get(f"/v1/{workspace.slug}/projects", headers=bearer(key)).json()
        if p["id"] == project_id
    )
    assert (project["name"], project["archived"], project["cost_center_name"]) == (
        "Client X API",
        True,
        "Client Work",
    )
    assert Decimal(project["hourly_rate"]) == Decimal("149.99")
    budgets = client.get(f"/v1/{workspace.slug}/budgets", headers=bearer(key)).json()
    assert [(b["project_slug"], Decimal(b["monthly_amount"])) for b in budgets] == [
        (None, Decimal("2750.00")),
        ("client-x/api", Decimal("300.50")),
    ]

    with psycopg.connect(postgres_url) as conn:
        rate_type = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'projects' AND column_name = 'hourly_rate'"
        ).fetchone()
        archived = conn.execute(
            "SELECT details FROM audit_events WHERE event = 'project.archived'"
        ).fetchone()[0]
        budget_events = conn.execute(
            "SELECT details FROM audit_events WHERE event = 'budget.set' ORDER BY id"
        ).fetchall()
    assert rate_type == ("numeric",)
    assert archived["hourly_rate"] == {"from": None, "to": "149.99"}
    assert archived["name"] == {"from": "client-x/api", "to": "Client X API"}
    assert [e[0]["to"] for e in budget_events] == ["2500.00", "300.50", "2750.00"]
    assert budget_events[2][0]["from"] == "2500.00"


def test_an_owner_turns_a_projects_hard_limit_on_and_off_and_an_admin_only_sees_it(
    client: TestClient, postgres_url: str
) -> None:
    from halton_api.testing.factories import add_member

    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    device = make_device(postgres_url, workspace=workspace)
    assert (
        client.post(
            "/v1/requests/batch", json=batch(device.device.machine_id, rows=1), headers=bearer(device.token)
        ).status_code
        == 200
    )
    key = make_api_key(postgres_url, workspace=workspace).key
    (project,) = client.get(f"/v1/{workspace.slug}/projects", headers=bearer(key)).json()
    settings = f"/{workspace.slug}/settings"
    browser = Browser(client, postgres_url, owner)
    assert (
        browser.post(
            f"{settings}/budgets", {"monthly_amount": "100", "project_id": project["id"]}
        ).status_code
        == 303
    )
    assert browser.post(f"{settings}/budgets", {"monthly_amount": "900"}).status_code == 303
    budgets = {
        b["project_slug"]: b for b in client.get(f"/v1/{workspace.slug}/budgets", headers=bearer(key)).json()
    }
    assert [b["hard_limit"] for b in budgets.values()] == [False, False]  # off by default

    page = browser.get(f"{settings}/projects").text
    assert "A hard limit makes paired meters" in page and "Turn on" in page
    budget_id = budgets[project["slug"]]["id"]
    assert (
        browser.post(f"{settings}/budgets/limit", {"budget_id": budget_id, "limit": "on"}).status_code == 303
    )
    assert (
        browser.post(f"{settings}/budgets/limit", {"budget_id": budget_id, "limit": "on"}).status_code == 303
    )
    assert (
        browser.post(
            f"{settings}/budgets/limit", {"budget_id": budgets[None]["id"], "limit": "on"}
        ).status_code
        == 422
    )
    assert (
        browser.post(f"{settings}/budgets/limit", {"budget_id": budget_id, "limit": "maybe"}).status_code
        == 422
    )
    listed = client.get(f"/v1/{workspace.slug}/budgets", headers=bearer(key)).json()
    assert {b["project_slug"]: b["hard_limit"] for b in listed} == {None: False, project["slug"]: True}

    admin = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=admin, role="admin")
    seen = Browser(client, postgres_url, admin).get(f"{settings}/projects").text
    assert "Turn off" not in seen and 'data-hard-limit="' + project["slug"] + '">on' in seen
    assert (
        browser.post(f"{settings}/budgets/limit", {"budget_id": budget_id, "limit": "off"}).status_code == 303
    )
    with psycopg.connect(postgres_url) as conn:
        events = conn.execute(
            "SELECT event, actor_label, resource_label FROM audit_events WHERE workspace_id = %s AND event LIKE 'budget.limit_%%'"
            " ORDER BY id",
            (workspace.id,),
        ).fetchall()
    # Turning it on twice is one change: one event each way, by the owner.
    assert events == [
        ("budget.limit_on", owner.email, project["slug"]),
        ("budget.limit_off", owner.email, project["slug"]),
    ]


def test_a_cost_center_gets_its_own_budget_beside_the_workspaces(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace, other = make_workspace(postgres_url, owner=owner), make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    settings = f"/{workspace.slug}/settings"
    assert admin.post(f"{settings}/cost-centers", {"name": "R&D"}).status_code == 303
    key = bearer(make_api_key(postgres_url, workspace=workspace).key)
    (centre,) = client.get(f"/v1/{workspace.slug}/cost-centers", headers=key).json()
    assert admin.post(f"{settings}/budgets", {"monthly_amount": "5000"}).status_code == 303
    for amount in ("1200", "1500.00"):  # set, then changed: one budget, two audit events
        done = admin.post(f"{settings}/budgets", {"monthly_amount": amount, "cost_center_id": centre["id"]})
        assert done.status_code == 303 and "cost+center+R%26D" in done.headers["location"]
    budgets = client.get(f"/v1/{workspace.slug}/budgets", headers=key).json()
    assert [(b["cost_center_name"], Decimal(b["monthly_amount"])) for b in budgets] == [
        (None, Decimal("5000.00")),
        ("R&D", Decimal("1500.00")),
    ]
    page = admin.get(f"{settings}/projects").text
    assert 'data-budget="Cost center R&amp;D"' in page and "data-cost-center-budget-form" in page
    # Another workspace's cost center, a malformed id, and a budget for a project and a cost center at once.
    theirs = admin.post(
        f"/{other.slug}/settings/budgets", {"monthly_amount": "9", "cost_center_id": centre["id"]}
    )
    assert theirs.status_code == 404 and "cost center" in theirs.text
    bad = admin.post(f"{settings}/budgets", {"monthly_amount": "9", "cost_center_id": "r-and-d"})
    assert bad.status_code == 422 and "cost center" in bad.text
    both = admin.post(
        f"{settings}/budgets",
        {"monthly_amount": "9", "cost_center_id": centre["id"], "project_id": centre["id"]},
    )
    assert both.status_code == 422 and "choose one" in both.text
    with psycopg.connect(postgres_url) as conn:
        events = conn.execute(
            "SELECT resource_label, details->>'from', details->>'to' FROM audit_events"
            " WHERE workspace_id = %s AND event = 'budget.set' ORDER BY id",
            (workspace.id,),
        ).fetchall()
    assert events == [
        ("workspace", None, "5000.00"),
        ("cost center R&D", None, "1200.00"),
        ("cost center R&D", "1200.00", "1500.00"),
    ]
