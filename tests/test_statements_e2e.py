"""Billed truth lives in the control plane (issue 19): statements pasted by a person or by `halton-cloud demo`
are PostgreSQL rows with audit events, copied to the warehouse by the control-plane snapshot, so a snapshot and
a full marts build keep them, and the reconciliation reads them.

Every part is real: the API under uvicorn on PostgreSQL and the embedded warehouse, `halton-cloud demo` as a
command sending its requests through the API, the Dagster snapshot asset and the dbt project materialized as
the marts job does, the pages in headless Chromium.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import psycopg
import pytest

from cloud_support import PASSWORD, CloudProcess, DashboardPage, build_marts, launch_chromium
from halton_api.demo import DEMO_PASSWORD
from halton_warehouse.demo.demo_data import MEMBERS

REQUESTS = 3_000
OWNER, ADMIN = MEMBERS[0].email, MEMBERS[1].email


def run_demo(cloud: CloudProcess) -> str:
    """`halton-cloud demo` against the running API, as a person would type it; what it printed (on stderr,
    where the CLI's console writes)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "halton_api.cloud_cli",
            "demo",
            "--requests",
            str(REQUESTS),
            "--url",
            cloud.url,
        ],
        env=cloud.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr


def reconciliation(warehouse, workspace_id, provider: str) -> dict[str, tuple]:
    rows = (
        warehouse.client()
        .query(
            f"SELECT period_label, billed_usd, billed_source, status FROM {warehouse.databases.marts}.reconciliation"
            " WHERE workspace_id = %(ws)s AND provider = %(provider)s",
            parameters={"ws": str(workspace_id), "provider": provider},
        )
        .result_rows
    )
    return {label: (billed, source, status) for label, billed, source, status in rows}


@pytest.fixture
def staging_dropped(warehouse) -> Iterator[None]:
    """dbt's staging database, which the `warehouse` fixture does not know about, dropped after the test."""
    yield
    warehouse.client().command(f"DROP DATABASE IF EXISTS {warehouse.prefix}staging SYNC")


def test_pasted_statements_survive_the_snapshot_and_reconcile(
    cloud, warehouse, postgres_url, staging_dropped, artifacts_dir
) -> None:
    output = run_demo(cloud)
    with psycopg.connect(postgres_url) as conn:
        (workspace_id, slug), *_ = conn.execute("SELECT id, slug FROM workspaces").fetchall()
        demo_statements = conn.execute(
            "SELECT to_char(s.period, 'YYYY-MM'), s.amount, u.email FROM billing_statements s"
            " JOIN users u ON u.id = s.entered_by WHERE s.provider = 'gemini' ORDER BY s.period"
        ).fetchall()
    # The terminal's count is the control plane's: the demo pasted them as its admin would.
    assert demo_statements and {email for *_, email in demo_statements} == {ADMIN}
    assert f"{len(demo_statements)} pasted statements" in output

    # The marts run that the demo's ingestion sets off: a snapshot, then every model. The demo's Gemini months
    # reconcile against its statements.
    build_marts(warehouse, postgres_url, as_of=datetime.now(UTC).date())
    gemini = reconciliation(warehouse, workspace_id, "gemini")
    for month, amount, _ in demo_statements:
        assert gemini[month] == (amount, "statement", "sage"), month

    this_month = f"{datetime.now(UTC):%Y-%m}"
    today = datetime.now(UTC).date()
    whole_demo = f"range=custom&from={today - timedelta(days=95)}&to={today}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=cloud.url)
        tab = DashboardPage(context.new_page(), SimpleNamespace(slug=slug))
        tab.sign_in(OWNER, DEMO_PASSWORD)

        # The owner pastes this month's Gemini statement, then corrects it.
        for amount in ("12.34", "56.78"):
            tab.open("/{ws}/reconciliation")
            form = tab.page.locator("form[data-statement-form]")
            form.locator("select[name=provider]").select_option("gemini")
            form.locator("input[name=month]").fill(this_month)
            form.locator("input[name=amount]").fill(amount)
            form.locator("input[name=note]").fill("Google Cloud invoice draft")
            form.locator("button[type=submit]").click()
            tab.page.wait_for_url("**notice=**")
        assert "corrected from $12.34 to $56.78" in tab.page.locator("p.notice").inner_text()

        # The next snapshot and full marts build carry it, and keep the demo's: only the control plane holds them.
        build_marts(warehouse, postgres_url, as_of=datetime.now(UTC).date())
        again = reconciliation(warehouse, workspace_id, "gemini")
        assert again[this_month][:2] == (Decimal("56.78"), "statement")
        assert {month: again[month] for month, *_ in demo_statements} == {
            month: gemini[month] for month, *_ in demo_statements
        }

        tab.open(f"/{{ws}}/reconciliation?{whole_demo}")
        for month, *_ in demo_statements:
            row = f"table[data-table=periods] tr[data-period='{month}'][data-provider='gemini']"
            assert tab.page.locator(f"{row} [data-status]").get_attribute("data-status") == "sage", month
            billed = tab.page.locator(f"{row} td").nth(4)  # the amount, and under it where it comes from
            assert billed.locator("[data-source]").inner_text().strip() == "Statement"
        row = f"table[data-table=periods] tr[data-period='{this_month}'][data-provider='gemini']"
        assert tab.page.locator(f"{row} td").nth(4).inner_text().strip().splitlines()[0] == "$56.78"
        statements = {(r[0], r[1]): r for r in tab.table("statements")}
        pasted = statements[(this_month, "Gemini")]
        assert pasted[2].splitlines() == ["$56.78", "corrected from $12.34"] and pasted[4] == OWNER
        assert all(statements[(month, "Gemini")][4] == ADMIN for month, *_ in demo_statements)
        tab.screenshot(artifacts_dir, "statements-reconciled")

        tab.open("/{ws}/audit?kind=billing")
        events = [(r[2], r[3]) for r in tab.table("events")]
        assert any(
            e == "billing.statement_corrected" and f"gemini {this_month}" in label for e, label in events
        )
        pasted_labels = [label for event, label in events if event == "billing.statement_pasted"]
        for month, *_ in [*demo_statements, (this_month,)]:
            assert any(f"gemini {month}" in label for label in pasted_labels), month
        tab.screenshot(artifacts_dir, "statements-audited")
        context.close()
        browser.close()
        assert tab.errors == [], f"console errors: {tab.errors}"


def test_a_new_workspace_pastes_a_statement_before_any_marts_build(
    chromium, cloud, person, postgres_url, artifacts_dir
) -> None:
    """A statement is a control-plane row: the form is there before the warehouse has any marts (the figures
    say they are unavailable), and what was pasted is listed at once."""
    context = chromium.new_context(base_url=cloud.url)
    page = context.new_page()
    page.goto("/signin")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview**")
    slug = person.workspace_slug
    page.goto(f"/{slug}/reconciliation")
    assert "Figures are unavailable right now" in page.locator("[role=alert]").inner_text()
    assert page.locator("table[data-table=periods]").count() == 0  # no marts: no figures
    month = f"{(datetime.now(UTC).date().replace(day=1) - timedelta(days=1)):%Y-%m}"
    form = page.locator("[data-statement-form]")
    form.locator("select[name=provider]").select_option("anthropic")
    form.locator("input[name=month]").fill(month)
    form.locator("input[name=amount]").fill("$1,234.56")
    form.locator("input[name=note]").fill("INV-0001")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**notice=**")
    assert "Anthropic statement for " + month + " saved ($1,234.56)" in page.content()
    row = page.locator("table[data-table=statements] tbody tr").first
    assert row.locator("td").all_inner_texts()[:4] == [month, "Anthropic", "$1,234.56", "INV-0001"]
    page.screenshot(path=str(artifacts_dir / "reconciliation-statement-before-marts.png"), full_page=True)
    context.close()
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT to_char(period, 'YYYY-MM'), amount FROM billing_statements WHERE provider = 'anthropic'"
        ).fetchall()
        events = conn.execute(
            "SELECT event FROM audit_events WHERE event LIKE 'billing.statement%'"
        ).fetchall()
    assert stored == [(month, Decimal("1234.56"))]
    assert events == [("billing.statement_pasted",)]
