"""Every page renders for a signed-in owner, inside the one base template (sidebar, CSRF'd sign-out)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from halton_api.pages import detail_pairs
from halton_api.testing.factories import Browser, batch, bearer, make_device, make_user, make_workspace

PAGES = (
    "overview",
    "projects",
    "cost-centers",
    "clusters",
    "audit",
    "settings/devices",
    "settings/members",
    "settings/advanced",
    "settings/exports",
    "settings/projects",
    "reports/verify",
)


def test_every_page_renders(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner, name="Rendering")
    second = make_workspace(postgres_url, owner=owner, name="Second")
    device = make_device(postgres_url, workspace=workspace)
    client.post("/v1/requests/batch", json=batch(device.device.machine_id, 3), headers=bearer(device.token))
    browser = Browser(client, postgres_url, owner)
    for page in PAGES:
        response = browser.get(f"/{workspace.slug}/{page}")
        assert response.status_code == 200, f"{page}: {response.status_code}"
        html = response.text
        assert '<nav class="sidebar"' in html and 'action="/signout"' in html, page
        assert f'href="/{second.slug}/overview"' in html, f"{page}: no workspace switcher"
        assert "https://" not in html.replace(owner.email, ""), f"{page}: no CDN or outside links"
    assert browser.get("/workspaces").status_code == 200
    assert browser.get(f"/{workspace.slug}").headers["location"] == f"/{workspace.slug}/overview"
    assert browser.get("/").headers["location"] in {f"/{workspace.slug}/overview", f"/{second.slug}/overview"}
    created = browser.post("/workspaces", {"name": "Third"})
    assert created.status_code == 303 and created.headers["location"].startswith("/third/overview")


def test_dashboards_say_why_when_the_marts_are_not_built(client: TestClient, postgres_url: str) -> None:
    """A fresh warehouse has no marts until Dagster's first dbt build: the pages explain, the JSON is a 503."""
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    page = browser.get(f"/{workspace.slug}/overview")
    assert page.status_code == 200
    assert "marts are not built yet" in page.text and "halton-dbt build" in page.text
    twin = browser.get(f"/v1/{workspace.slug}/overview")
    assert twin.status_code == 503 and twin.headers["retry-after"] == "60"
    assert "marts are not built yet" in twin.json()["detail"]


def test_audit_details_read_as_key_value_text() -> None:
    details = {
        "role": "admin",
        "note": "it's",
        "scopes": ["a", "b"],
        "limits": {"rpm": 5},
        "on": True,
        "x": None,
    }
    assert detail_pairs(details) == [
        ("role", "admin"), ("note", "it's"), ("scopes", "a, b"), ("limits.rpm", "5"), ("on", "yes"), ("x", "—")
    ]  # fmt: skip
    assert detail_pairs({}) == [] and detail_pairs(None) == []
