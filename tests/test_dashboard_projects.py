"""The projects list, a project's page, its recent requests (paging, search, CSV) and a request's trace, in a
real browser on the demo workspace: what the pages show is what the marts hold."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from cloud_support import first_day
from halton_api.charts import exact_money, money, unit_money

PROJECT = "acme-batch-summariser"


def test_projects_list_is_the_marts(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/projects")
    expected = built_demo.query(
        "SELECT project, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " GROUP BY project ORDER BY s DESC, project",
        d=first_day(),
    )
    shown = demo_page.table("projects")
    assert [row[2] for row in shown[: len(expected)]] == [money(s) for _, s in expected]
    demo_page.screenshot(artifacts_dir, "projects")


def test_project_page_figures_breakdowns_and_grain(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open(f"/{{ws}}/projects/{PROJECT}")
    total = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s AND project = %(p)s",
        d=first_day(),
        p=PROJECT,
    )
    assert demo_page.figure("spend") == money(total)
    by_model = built_demo.query(
        "SELECT model, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND project = %(p)s GROUP BY provider, model ORDER BY s DESC, provider, model",
        d=first_day(),
        p=PROJECT,
    )
    assert [(row[0], row[2]) for row in demo_page.table("by-model")] == [(m, money(s)) for m, s in by_model]
    by_device = built_demo.query(
        "SELECT device_id, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND project = %(p)s GROUP BY device_id ORDER BY s DESC, device_id",
        d=first_day(),
        p=PROJECT,
    )
    assert [row[2] for row in demo_page.table("by-developer")] == [money(s) for _, s in by_device]
    assert demo_page.page.locator("figure.chart > svg").count() == 2
    demo_page.screenshot(artifacts_dir, "project")

    # A developer's row narrows the page to that device: numbers and URL follow.
    demo_page.page.locator("table[data-table=by-developer] a").first.click()
    demo_page.page.wait_for_url(f"**device={by_device[0][0]}**")
    assert demo_page.figure("spend") == money(by_device[0][1])
    # This project has no budget of its own: the card says so and names the workspace budget covering it.
    note = demo_page.page.locator("[data-figure=budget] [data-budget-note]").inner_text()
    assert note.startswith(f"No budget for project {PROJECT}; the workspace budget ($")
    # Weekly aggregation keeps the filters.
    demo_page.page.click("nav.tabs a:has-text('Weekly')")
    demo_page.page.wait_for_url("**grain=week**")
    assert f"device={by_device[0][0]}" in demo_page.page.url
    assert demo_page.figure("spend") == money(by_device[0][1])
    demo_page.screenshot(artifacts_dir, "project-weekly-one-device")


def test_recent_requests_page_search_and_csv(demo_page, built_demo) -> None:
    demo_page.open(f"/{{ws}}/projects/{PROJECT}")
    newest = built_demo.query(
        "SELECT request_uid, provider_request_id, cost_usd FROM {marts}.requests WHERE workspace_id = '{ws}'"
        " AND project = %(p)s AND day >= %(d)s ORDER BY started_at DESC, request_uid DESC LIMIT 101",
        p=PROJECT,
        d=first_day(),
    )
    rows = demo_page.table("requests")
    assert len(rows) == 100
    assert [row[-1] for row in rows] == [prid or "—" for _, prid, _ in newest[:100]]

    # The CSV is exactly the visible rows.
    href = demo_page.page.locator("a:has-text('CSV of these rows')").get_attribute("href")
    body = demo_page.page.request.get(href).text()
    records = list(csv.DictReader(io.StringIO(body)))
    assert [r["provider_request_id"] or "—" for r in records] == [row[-1] for row in rows]
    assert [Decimal(r["cost_usd"]) for r in records] == [cost for _, _, cost in newest[:100]]

    # Older: the next page starts right after the last row.
    demo_page.page.click("a[rel=next]")
    demo_page.page.wait_for_url("**cursor=**")
    assert demo_page.table("requests")[0][-1] == (newest[100][1] or "—")

    # Search by provider_request_id finds the one request.
    target = next(prid for _, prid, _ in newest[40:] if prid)
    demo_page.page.fill("input[name=q]", target)
    demo_page.page.click("form.search button")
    demo_page.page.wait_for_url("**q=**")
    found = demo_page.table("requests")
    assert [row[-1] for row in found] == [target]


def test_a_row_opens_its_trace_with_full_provenance(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open(f"/{{ws}}/projects/{PROJECT}")
    demo_page.page.locator("table[data-table=requests] tbody tr").first.locator("a").click()
    demo_page.page.wait_for_url("**/traces/**")
    uid = demo_page.page.url.split("/traces/")[1].split("?")[0]
    (row,) = built_demo.query(
        "SELECT cost_usd, input_tokens, output_tokens, attribution_tier, provider_request_id, repriced_cost_usd,"
        " rate_input_mtok, price_card FROM {marts}.requests WHERE workspace_id = '{ws}' AND request_uid = %(u)s",
        u=uid,
    )
    cost, input_tokens, output_tokens, tier, prid, repriced, rate_input, card = row
    # The figure reads at a glance; every digit the warehouse keeps is on hover (and in the JSON twin).
    assert demo_page.figure("cost") == unit_money(cost)
    assert demo_page.page.locator("[data-figure=cost] span").get_attribute("title") == exact_money(cost)
    assert demo_page.figure("input_tokens") == f"{input_tokens:,}"
    assert demo_page.figure("output_tokens") == f"{output_tokens:,}"
    assert demo_page.figure("tier").startswith(tier)
    assert demo_page.figure("provider_request_id") == prid
    assert demo_page.figure("repriced") == unit_money(repriced)
    lines = demo_page.table("cost-lines")
    exact_lines = demo_page.page.locator("table[data-table=cost-lines] tbody td[data-usd]")
    assert (
        sum(Decimal(cell.get_attribute("data-usd")) for cell in exact_lines.all()) == repriced
    )  # the arithmetic adds up
    assert lines[0][2] == unit_money(rate_input)
    assert card in demo_page.page.inner_text("main")
    demo_page.screenshot(artifacts_dir, "trace")


def test_unknown_project_and_trace_are_404(demo_page) -> None:
    response = demo_page.page.goto("/" + demo_page.demo.slug + "/projects/no-such-project")
    assert response.status == 404
    response = demo_page.page.goto("/" + demo_page.demo.slug + "/traces/00000000-0000-4000-8000-000000000000")
    assert response.status == 404
    demo_page.errors.clear()  # the browser logs the 404s themselves
