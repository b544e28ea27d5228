"""The executive view in a real browser on the demo workspace: its headline figures, their change, the top
three projects, the reconciliation signal and the monthly chart are the marts' figures; the rail filters them and
lands in the URL; the JSON twin says the same; the PDF button points at the executive PDF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dashboard_clients import signed_in
from halton_api.charts import money
from halton_api.dashboards.page_models import ReconciliationRow
from halton_api.dashboards.reconciliation import all_providers

SPEND = "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"


def calendar() -> dict:
    today = datetime.now(UTC).date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    return {
        "today": today,
        "this_month": this_month,
        "last_month": last_month,
        "year": today.replace(month=1, day=1),
    }


def last_month_row(built_demo) -> ReconciliationRow:
    names = ("period", "period_label", "provider", "requests", "logged_usd", "billed_usd", "billed_source",
             "variance_usd", "variance_pct", "status", "divergent_days", "compared_logged_usd",
             "unbilled_logged_usd", "billed_status")  # fmt: skip
    rows = built_demo.query(
        f"SELECT {', '.join(names)} FROM {{marts}}.reconciliation WHERE workspace_id = '{{ws}}' AND period = %(m)s",
        m=calendar()["last_month"],
    )
    return all_providers([ReconciliationRow(**dict(zip(names, r, strict=True))) for r in rows])


def test_the_headline_figures_are_the_marts(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/executive")
    c = calendar()
    this_month = built_demo.scalar(f"{SPEND} AND day >= %(m)s", m=c["this_month"])
    last_month = built_demo.scalar(
        f"{SPEND} AND day >= %(a)s AND day < %(b)s", a=c["last_month"], b=c["this_month"]
    )
    year = built_demo.scalar(f"{SPEND} AND day >= %(y)s", y=c["year"])
    assert demo_page.figure("this_month") == money(this_month)
    assert demo_page.figure("last_month") == money(last_month)
    assert demo_page.figure("year_to_date") == money(year)
    # Month to date against last month to the same day.
    same_day = built_demo.scalar(
        f"{SPEND} AND day >= %(a)s AND day < %(b)s",
        a=c["last_month"],
        b=min(c["last_month"] + timedelta(days=c["today"].day), c["this_month"]),
    )
    pct = ((this_month - same_day) / same_day * 100).quantize(Decimal("0.1"))
    assert demo_page.figure("change_same_day") == f"{pct:+.1f}%"
    assert (
        demo_page.figure("change_month")
        == f"{((this_month - last_month) / last_month * 100).quantize(Decimal('0.1')):+.1f}%"
    )
    # A month not yet over against a whole month is not like with like: no red or green on it.
    unfair = demo_page.page.locator("[data-figure=change_month] span").first
    assert unfair.get_attribute("data-unfair") is not None and not unfair.get_attribute("class")
    # Top three projects of the rail's period (30 days), with their share.
    first = c["today"] - timedelta(days=29)
    total = built_demo.scalar(f"{SPEND} AND day >= %(d)s", d=first)
    top = built_demo.query(
        "SELECT project, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " GROUP BY project ORDER BY s DESC, project LIMIT 3",
        d=first,
    )
    shown = demo_page.table("top-projects")
    assert [row[1] for row in shown] == [money(s) for _, s in top]
    assert [row[2] for row in shown] == [f"{(s / total * 100).quantize(Decimal('0.1')):.1f}%" for _, s in top]
    # The trust signal: last month's all-providers reconciliation.
    row = last_month_row(built_demo)
    shown_pct = demo_page.figure("reconciliation")
    assert shown_pct == f"{row.variance_pct:+.2f}%"
    status = demo_page.page.locator("[data-figure=reconciliation] [data-status]").get_attribute("data-status")
    assert status == row.status
    page = demo_page.page
    assert page.locator("figure.chart > svg").count() == 1
    assert page.locator("figure.chart > svg rect[fill]").count() >= 3  # columns for the demo's months
    assert page.locator("form[data-pdf]").get_attribute("action") == f"/{built_demo.slug}/reports/new"
    assert (
        page.locator(".executive .figures dd").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        >= 30
    )
    demo_page.screenshot(artifacts_dir, "executive")


def test_a_filter_changes_the_figures_and_the_url(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/executive")
    before = demo_page.figure("this_month")
    page = demo_page.page
    page.locator("details.multi summary", has_text="Provider").click()
    page.check("input[name=provider][value=anthropic]")
    page.locator("details.multi summary", has_text="Provider").click()
    page.click("form[data-rail] button[type=submit]")
    page.wait_for_url("**provider=anthropic**")
    anthropic = built_demo.scalar(
        f"{SPEND} AND day >= %(m)s AND provider = 'anthropic'", m=calendar()["this_month"]
    )
    assert demo_page.figure("this_month") == money(anthropic) != before
    assert (
        page.locator("form[data-pdf]").get_attribute("action")
        == f"/{built_demo.slug}/reports/new?provider=anthropic"
    )
    demo_page.screenshot(artifacts_dir, "executive-anthropic")


def test_the_json_twin(demo_cloud, built_demo) -> None:
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    body = client.get(f"/v1/{built_demo.slug}/executive").json()
    c = calendar()
    assert Decimal(body["this_month_usd"]) == built_demo.scalar(
        f"{SPEND} AND day >= %(m)s", m=c["this_month"]
    )
    assert Decimal(body["year_to_date_usd"]) == built_demo.scalar(f"{SPEND} AND day >= %(y)s", y=c["year"])
    assert len(body["top_projects"]) == 3 and len(body["monthly"]["buckets"]) == 12
    monthly = sum(Decimal(v) for s in body["monthly"]["series"] for v in s["values"])
    first = datetime.fromisoformat(body["monthly"]["buckets"][0]).date()
    assert monthly == built_demo.scalar(f"{SPEND} AND day >= %(f)s", f=first)
    row = last_month_row(built_demo)
    assert body["reconciliation"]["status"] == row.status and body["reconciliation"]["provider"] is None
    assert client.get(f"/v1/{built_demo.slug}/executive", params={"provider": "mistral"}).status_code == 422
