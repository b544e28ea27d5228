"""Reconciliation in a real browser on the demo workspace: the months' rows are the marts' rows (and the
all-providers row follows the same colour rule), xAI's price-change month is red, a month opens on its days and
the requests behind the divergence, and pasting a statement is an admin's act, audited, with clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from dashboard_clients import csrf, signed_in
from halton_api.charts import money
from halton_api.dashboards.page_models import ReconciliationRow
from halton_api.dashboards.reconciliation import all_providers

# Pasted by these tests: a month long before the demo's 90 days, so no figure other tests read changes.
PASTE_PROVIDER, PASTE_MONTH = "anthropic", "2024-03"


def whole_demo() -> str:
    today = datetime.now(UTC).date()
    return f"range=custom&from={today - timedelta(days=95)}&to={today}"


def mart_rows(built_demo, months: list[date] | None = None, provider: str | None = None) -> list[dict]:
    rows = built_demo.query(
        "SELECT period, period_label, provider, requests, logged_usd, billed_usd, billed_source, variance_usd,"
        " variance_pct, status, divergent_days, compared_logged_usd, unbilled_logged_usd, billed_status"
        " FROM {marts}.reconciliation WHERE workspace_id = '{ws}' ORDER BY period DESC, provider"
    )
    names = ("period", "period_label", "provider", "requests", "logged_usd", "billed_usd", "billed_source",
             "variance_usd", "variance_pct", "status", "divergent_days", "compared_logged_usd",
             "unbilled_logged_usd", "billed_status")  # fmt: skip
    out = [dict(zip(names, row, strict=True)) for row in rows]
    return [
        r
        for r in out
        if (months is None or r["period"] in months) and (provider is None or r["provider"] == provider)
    ]


def cell(page, period: str, provider: str, column: int) -> str:
    return (
        page.locator(f"table[data-table=periods] tr[data-period='{period}'][data-provider='{provider}'] td")
        .nth(column)
        .inner_text()
        .splitlines()[0]  # the figure, not the note under it
        .strip()
    )


def status_of(page, period: str, provider: str) -> str:
    return page.locator(
        f"table[data-table=periods] tr[data-period='{period}'][data-provider='{provider}'] [data-status]"
    ).get_attribute("data-status")


def red_month(built_demo) -> str:
    return built_demo.demo.price_change_day.strftime("%Y-%m")


def test_the_months_are_the_marts_and_the_price_change_month_is_red(
    demo_page, built_demo, artifacts_dir
) -> None:
    demo_page.open(f"/{{ws}}/reconciliation?{whole_demo()}")
    page = demo_page.page
    rows = mart_rows(built_demo)
    assert rows, "the demo has reconciliation rows"
    shown = page.locator("table[data-table=periods] tbody tr")
    periods = sorted({r["period"] for r in rows}, reverse=True)
    assert shown.count() == len(rows) + len(periods)  # an all-providers row per month
    for r in rows:
        # Columns: period, provider, requests, logged, billed, source, variance, variance %, status.
        assert cell(page, r["period_label"], r["provider"], 3) == money(r["logged_usd"])
        expected_billed = "—" if r["billed_usd"] is None else money(r["billed_usd"])
        assert cell(page, r["period_label"], r["provider"], 4) == expected_billed
        assert status_of(page, r["period_label"], r["provider"]) == r["status"]
    for period in periods:
        group = [ReconciliationRow(**r) for r in rows if r["period"] == period]
        total = all_providers(group)
        label = f"{period:%Y-%m}"
        assert cell(page, label, "all", 3) == money(sum(r.logged_usd for r in group))
        assert status_of(page, label, "all") == total.status
    red = [(r["provider"], r["period_label"]) for r in rows if r["status"] == "red"]
    assert red == [("xai", red_month(built_demo))]
    pill = page.locator(
        f"table[data-table=periods] tr[data-period='{red_month(built_demo)}'][data-provider=xai] .pill.red"
    )
    assert pill.inner_text() == "Investigate"
    assert pill.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(251, 227, 224)"  # --red-bg
    sage = page.locator("table[data-table=periods] [data-status=sage]").first
    assert sage.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(227, 241, 230)"  # --sage-bg
    # Gemini reconciles against the pasted statements; the billing sources say where each bill comes from.
    assert page.locator("table[data-table=connections] tr[data-provider=gemini]").inner_text().count("3") >= 1
    assert demo_page.table("statements")[0][1] == "Gemini"
    demo_page.screenshot(artifacts_dir, "reconciliation")


def test_a_provider_filter_changes_the_rows_and_the_url(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open(f"/{{ws}}/reconciliation?{whole_demo()}")
    page = demo_page.page
    page.locator("details.multi summary", has_text="Provider").click()
    page.check("input[name=provider][value=xai]")
    page.locator("details.multi summary", has_text="Provider").click()  # closed: its list covers Apply
    page.click("form[data-rail] button[type=submit]")
    page.wait_for_url("**provider=xai**")
    assert "range=custom" in page.url
    xai = mart_rows(built_demo, provider="xai")
    assert page.locator("table[data-table=periods] tbody tr").count() == 2 * len(xai)
    for r in xai:  # the all-providers row is xAI's alone now
        assert (
            cell(page, r["period_label"], "all", 3)
            == money(r["logged_usd"])
            == cell(page, r["period_label"], "xai", 3)
        )
        assert status_of(page, r["period_label"], "all") == r["status"]
    assert page.locator("[data-ignored-filters]").count() == 0
    # Billing cannot be split by project: the page says so, and the figures stay the provider's.
    demo_page.open(f"/{{ws}}/reconciliation?{whole_demo()}&provider=xai&project=code-review-bot")
    assert "project filter does not apply" in page.locator("[data-ignored-filters]").inner_text()
    assert cell(page, xai[0]["period_label"], "xai", 3) == money(xai[0]["logged_usd"])
    demo_page.screenshot(artifacts_dir, "reconciliation-xai")


def test_a_month_shows_its_days_and_the_requests_behind_the_divergence(
    demo_page, built_demo, artifacts_dir
) -> None:
    month = red_month(built_demo)
    demo_page.open(f"/{{ws}}/reconciliation?{whole_demo()}")
    page = demo_page.page
    page.click(f"table[data-table=periods] tr[data-period='{month}'][data-provider=all] a")
    page.wait_for_url(f"**/reconciliation/{month}**")
    first = date.fromisoformat(f"{month}-01")
    days = built_demo.query(
        "SELECT day, provider, logged_usd, status FROM {marts}.reconciliation_daily WHERE workspace_id = '{ws}'"
        " AND period = %(p)s ORDER BY day, provider",
        p=first,
    )
    shown = page.locator("table[data-table=days] tbody tr")
    assert shown.count() == len(days)
    for i in (0, len(days) // 2, len(days) - 1):
        day, provider, logged, status = days[i]
        row = page.locator(f"table[data-table=days] tr[data-day='{day}'][data-provider='{provider}']")
        assert row.locator("td").nth(3).inner_text() == money(logged)
        assert row.locator("[data-status]").get_attribute("data-status") == status
    # xAI's requests: those priced with the superseded card come first.
    demo_page.open(f"/{{ws}}/reconciliation/{month}?provider=xai")
    where = "workspace_id = '{ws}' AND provider = 'xai' AND toStartOfMonth(day) = %(p)s"
    total = built_demo.scalar(f"SELECT count() FROM {{marts}}.reconciliation_requests WHERE {where}", p=first)
    stale = built_demo.scalar(
        f"SELECT count() FROM {{marts}}.reconciliation_requests WHERE {where} AND repricing_differs", p=first
    )
    assert total > 100 and stale > 0
    assert demo_page.figure("requests_total") == f"{total:,}"
    requests = page.locator("table[data-table=requests] tbody tr")
    assert requests.count() == 100
    top = requests.first.get_attribute("data-request")
    assert built_demo.scalar(
        "SELECT repricing_differs FROM {marts}.reconciliation_requests WHERE request_uid = %(u)s", u=top
    )
    assert (
        requests.first.locator("a", has_text="Trace").get_attribute("href")
        == f"/{built_demo.slug}/traces/{top}"
    )
    assert (
        requests.first.locator("a", has_text="Audit").get_attribute("href")
        == f"/{built_demo.slug}/audit/requests?q={top}"
    )
    demo_page.screenshot(artifacts_dir, "reconciliation-month")
    # Next page: the next 100, none repeated.
    page.click("nav.pager a[rel=next]")
    page.wait_for_url("**cursor=100**")
    second = {requests.nth(i).get_attribute("data-request") for i in range(requests.count())}
    assert top not in second and len(second) == min(100, total - 100)
    # Search by the provider's request id.
    rid, uid = built_demo.query(
        f"SELECT provider_request_id, toString(request_uid) FROM {{marts}}.reconciliation_requests WHERE {where}"
        " AND provider_request_id IS NOT NULL ORDER BY started_at LIMIT 1",
        p=first,
    )[0]
    page.fill("input[name=q]", rid)
    page.click("form.search button[type=submit]")
    page.wait_for_url("**q=**")
    assert "cursor" not in page.url and "provider=xai" in page.url
    assert [requests.nth(i).get_attribute("data-request") for i in range(requests.count())] == [uid]


def test_the_json_twins(demo_cloud, built_demo) -> None:
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    body = client.get(f"/v1/{built_demo.slug}/reconciliation?{whole_demo()}").json()
    rows = mart_rows(built_demo)
    providers = [r for r in body["periods"] if r["provider"] is not None]
    assert [(r["period_label"], r["provider"], Decimal(r["logged_usd"]), r["status"]) for r in providers] == [
        (r["period_label"], r["provider"], r["logged_usd"], r["status"]) for r in rows
    ]
    assert body["thresholds"]["red"] == "above 2%"
    month = red_month(built_demo)
    detail = client.get(f"/v1/{built_demo.slug}/reconciliation/{month}", params={"provider": "xai"}).json()
    assert detail["period"] == f"{month}-01" and detail["rows"][1]["status"] == "red"
    assert len(detail["requests"]) == 100 and detail["next_cursor"] == "100"
    for bad, named in (("2026-13", "period"), ("latest", "period")):
        response = client.get(f"/v1/{built_demo.slug}/reconciliation/{bad}")
        assert response.status_code == 422 and response.json()["detail"].startswith(named), response.text
    response = client.get(f"/v1/{built_demo.slug}/reconciliation/{month}", params={"cursor": "7"})
    assert response.status_code == 422 and response.json()["detail"].startswith("cursor")


@pytest.fixture
def no_pasted_statement(built_demo):
    def clean() -> None:
        with psycopg.connect(built_demo.database_url) as conn:
            conn.execute(
                "DELETE FROM billing_statements WHERE provider = %s AND period = %s",
                (PASTE_PROVIDER, date.fromisoformat(f"{PASTE_MONTH}-01")),
            )

    clean()
    yield
    clean()


def test_an_owner_pastes_a_statement(demo_page, built_demo, no_pasted_statement, artifacts_dir) -> None:
    demo_page.open("/{ws}/reconciliation")
    page = demo_page.page
    form = page.locator("form[data-statement-form]")
    form.locator("select[name=provider]").select_option(PASTE_PROVIDER)
    form.locator("input[name=month]").fill(PASTE_MONTH)
    form.locator("input[name=amount]").fill("1,234.56")
    form.locator("input[name=note]").fill("Invoice INV-0042")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**notice=**")
    notice = page.locator("p.notice").inner_text()
    assert f"Anthropic statement for {PASTE_MONTH} saved ($1,234.56)" in notice and "next run" in notice
    assert [
        PASTE_MONTH,
        "Anthropic",
        "$1,234.56",
        "Invoice INV-0042",
        built_demo.owner_email,
    ] == demo_page.table("statements")[-1][:5]
    demo_page.screenshot(artifacts_dir, "reconciliation-pasted")
    # Pasting the same month again corrects it: the earlier version is kept, both changes are audited.
    form.locator("select[name=provider]").select_option(PASTE_PROVIDER)
    form.locator("input[name=month]").fill(PASTE_MONTH)
    form.locator("input[name=amount]").fill("1200")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**corrected**")
    assert "corrected from $1,234.56 to $1,200.00" in page.locator("p.notice").inner_text()
    assert "corrected from $1,234.56" in demo_page.table("statements")[-1][2]
    # The same again is no correction.
    form.locator("select[name=provider]").select_option(PASTE_PROVIDER)
    form.locator("input[name=month]").fill(PASTE_MONTH)
    form.locator("input[name=amount]").fill("1200.00")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**nothing+changed**")
    with psycopg.connect(built_demo.database_url) as conn:
        amount = conn.execute(
            "SELECT amount FROM billing_statements WHERE provider = %s AND period = %s",
            (PASTE_PROVIDER, date.fromisoformat(f"{PASTE_MONTH}-01")),
        ).fetchone()[0]
        revisions = conn.execute(
            "SELECT r.amount, r.note FROM billing_statement_revisions r JOIN billing_statements s"
            " ON s.id = r.statement_id WHERE s.provider = %s AND s.period = %s ORDER BY r.id",
            (PASTE_PROVIDER, date.fromisoformat(f"{PASTE_MONTH}-01")),
        ).fetchall()
        events = conn.execute(
            "SELECT event, actor_label, details->>'amount_usd', details->>'previous_amount_usd' FROM audit_events"
            " WHERE resource_label = %s ORDER BY id DESC LIMIT 3",
            (f"{PASTE_PROVIDER} {PASTE_MONTH}",),
        ).fetchall()
    assert amount == Decimal("1200")
    assert revisions == [(Decimal("1234.56"), "Invoice INV-0042"), (Decimal("1200"), "")]
    assert events[:2] == [
        ("billing.statement_corrected", built_demo.owner_email, "1200", "1234.56"),
        ("billing.statement_pasted", built_demo.owner_email, "1234.56", None),
    ]


def test_a_viewer_cannot_paste_and_bad_input_names_the_field(
    demo_cloud, built_demo, no_pasted_statement
) -> None:
    viewer = next(m for m in built_demo.demo.members if m.role == "viewer")
    client = signed_in(demo_cloud.url, viewer.email)
    path = f"/{built_demo.slug}/reconciliation"
    page = client.get(path)
    assert page.status_code == 200 and "Only workspace admins can paste statements" in page.text
    form = {"csrf_token": csrf(client, path), "provider": PASTE_PROVIDER, "month": PASTE_MONTH, "amount": "5"}
    refused = client.post(f"{path}/statements", data=form)
    assert refused.status_code == 403 and "cannot do this" in refused.text
    owner = signed_in(demo_cloud.url, built_demo.owner_email)
    token = csrf(owner, path)
    for changes, named in (
        ({"month": "2024-13"}, "month"),
        ({"month": "March"}, "month"),
        ({"amount": "-12.00"}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"provider": "mistral"}, "provider"),
    ):
        response = owner.post(f"{path}/statements", data={**form, "csrf_token": token, **changes})
        assert response.status_code == 422, (changes, response.status_code)
        assert f"{named}: " in response.text, response.text
    with psycopg.connect(built_demo.database_url) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM billing_statements WHERE period = %s",
                (date.fromisoformat(f"{PASTE_MONTH}-01"),),
            ).fetchone()[0]
            == 0
        )
