"""One reconciliation contract on every view: the executive page, its signed PDF and the reconciliation page
show the same figures for the same month and providers, each saying which providers and days it covers and how
much of the logged spend has a bill; a provider without a bill is never labelled a match; and the executive
view, its PDF and the overview name the same previous period for "this month" (the same days of last month).

Real dbt (through Dagster) over the demo, built without its pasted Gemini statements: the state the issue
measured, where Gemini's spend has no bill in any month.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from demo_marts import DEMO_PASSWORD, build_demo, drop_demo
from test_reports_pdf import generate_pdf

from cloud_support import CloudProcess, DashboardPage
from dashboard_clients import signed_in
from halton_api.charts import money
from halton_api.dashboards.filters import month_start, previous_month
from halton_api.testing.pdf import pdf_pages_png

REQUESTS = 6_000  # enough for every provider in every month; the figures, not the volume, are under test
FIGURES = ("logged_usd", "billed_usd", "compared_logged_usd", "unbilled_logged_usd", "variance_usd",
           "variance_pct", "status", "billed_status", "covers", "providers", "billed_providers",
           "unbilled_providers", "coverage_pct", "coverage")  # fmt: skip


@pytest.fixture(scope="module")
def unbilled_demo(warehouse_server: str, postgres_server: str):
    built = build_demo(warehouse_server, postgres_server, requests=REQUESTS, statements=False)
    yield built
    drop_demo(built, postgres_server)


@pytest.fixture(scope="module")
def cloud(unbilled_demo, module_server_dir: Path) -> Iterator[CloudProcess]:
    process = CloudProcess.on_stores(
        module_server_dir,
        database_url=unbilled_demo.database_url,
        warehouse_url=unbilled_demo.warehouse_url,
        prefix=unbilled_demo.prefix,
        DEVICE_SILENT_AFTER_SECONDS=str(7 * 86400),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def owner(cloud, unbilled_demo):
    client = signed_in(cloud.url, unbilled_demo.owner_email)
    yield client
    client.close()


@pytest.fixture
def page(chromium, cloud, unbilled_demo) -> Iterator[DashboardPage]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=cloud.url)
    shown = DashboardPage(context.new_page(), unbilled_demo)
    shown.sign_in(unbilled_demo.owner_email, DEMO_PASSWORD)
    yield shown
    context.close()
    assert shown.errors == [], f"console errors: {shown.errors}"


def last_month() -> str:
    return f"{previous_month(datetime.now(UTC).date()):%Y-%m}"


def reconciliation_rows(owner, slug: str, query: str = "") -> list[dict]:
    response = owner.get(f"/v1/{slug}/reconciliation{query}")
    assert response.status_code == 200, response.text
    return response.json()["periods"]


def month_total(owner, slug: str, month: str) -> dict:
    (row,) = [
        r
        for r in reconciliation_rows(owner, slug, "?range=last_month")
        if r["period_label"] == month and r["provider"] is None
    ]
    return row


def test_the_executive_figure_is_the_reconciliation_pages_row(owner, unbilled_demo) -> None:
    slug = unbilled_demo.slug
    executive = owner.get(f"/v1/{slug}/executive").json()
    trust = executive["reconciliation"]
    row = month_total(owner, slug, last_month())
    assert {k: trust[k] for k in FIGURES} == {k: row[k] for k in FIGURES}
    # Gemini logged spend and has no bill: the month is partly billed, never a match, and says how much.
    assert trust["unbilled_providers"] == ["gemini"] and trust["status"] == "partial"
    assert sorted(trust["billed_providers"]) == ["anthropic", "openai", "xai"]
    assert sorted(trust["providers"]) == ["anthropic", "gemini", "openai", "xai"]
    logged, compared = Decimal(trust["logged_usd"]), Decimal(trust["compared_logged_usd"])
    assert 0 < compared < logged and Decimal(trust["unbilled_logged_usd"]) == logged - compared
    # "Last month" beside the trust signal is everything logged, the figure the coverage is a share of.
    assert Decimal(executive["last_month_usd"]) == logged
    first, after = previous_month(datetime.now(UTC).date()), month_start(datetime.now(UTC).date())
    assert logged == unbilled_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"
        " AND day >= %(a)s AND day < %(b)s",
        a=first,
        b=after,
    )
    share = int(compared / logged * 100)
    assert trust["coverage"] == f"billed data for 3 of 4 providers, {share}% of logged spend"
    assert trust["covers"].endswith("(whole month)") and f"{first:%d %b %Y}" in trust["covers"]
    # The variance compares the billed providers' logged spend with their bills, nothing else.
    assert Decimal(trust["variance_usd"]) == compared - Decimal(trust["billed_usd"])
    # The same contract under a provider filter: the figure is the page's row for the same providers.
    narrowed = owner.get(f"/v1/{slug}/executive?provider=gemini").json()["reconciliation"]
    (gemini,) = [
        r
        for r in reconciliation_rows(owner, slug, "?range=last_month&provider=gemini")
        if r["period_label"] == last_month() and r["provider"] is None
    ]
    assert {k: narrowed[k] for k in FIGURES} == {k: gemini[k] for k in FIGURES}
    assert narrowed["status"] == "unbilled" and narrowed["coverage"].startswith(
        "billed data for 0 of 1 provider"
    )


def test_no_spend_without_a_bill_is_ever_a_match(owner, unbilled_demo) -> None:
    today = datetime.now(UTC).date()
    rows = reconciliation_rows(
        owner, unbilled_demo.slug, f"?range=custom&from={today - timedelta(days=95)}&to={today}"
    )
    assert len({r["period_label"] for r in rows}) >= 4
    for r in rows:
        unbilled_spend = r["unbilled_providers"] or (r["billed_usd"] is None and Decimal(r["logged_usd"]))
        if unbilled_spend:
            assert r["status"] in ("partial", "unbilled"), r
        if r["provider"] == "gemini":
            assert r["status"] == "unbilled" and r["billed_usd"] is None, r
    assert any(r["status"] == "partial" for r in rows)


def money_part(locator, part: str) -> str:
    return locator.locator(f"[data-part={part}]").inner_text().strip()


def test_the_pages_show_the_same_figures_and_say_what_they_cover(
    page, owner, unbilled_demo, artifacts_dir
) -> None:
    slug = unbilled_demo.slug
    row = month_total(owner, slug, last_month())
    # The reconciliation page, last month: the all-providers row with its coverage.
    page.open("/{ws}/reconciliation?range=last_month")
    total = page.page.locator(
        f"table[data-table=periods] tr[data-period='{last_month()}'][data-provider=all]"
    )
    cells = total.locator("td")
    assert cells.nth(3).inner_text().splitlines()[0].strip() == money(Decimal(row["logged_usd"]))
    assert (
        total.locator("[data-compared]").inner_text().startswith(money(Decimal(row["compared_logged_usd"])))
    )
    # The billed amount, and under it where the figure comes from.
    assert cells.nth(4).inner_text().strip().splitlines()[0] == money(Decimal(row["billed_usd"]))
    assert total.locator("[data-status]").get_attribute("data-status") == "partial"
    assert total.locator("[data-status]").inner_text() == "Partly billed"
    assert row["coverage"] in total.locator("[data-coverage]").inner_text()
    assert row["covers"] in total.locator("[data-covers]").inner_text()
    for sage in page.page.locator("table[data-table=periods] tr:has([data-status=sage])").all():
        assert sage.locator("td").nth(4).inner_text().strip() != "—"  # a match always has a bill
    page.screenshot(artifacts_dir, "contract-reconciliation")
    shown = {
        "pct": total.locator("[data-variance-pct]").inner_text().strip(),
        "logged": money(Decimal(row["logged_usd"])),
        "compared": money(Decimal(row["compared_logged_usd"])),
        "billed": money(Decimal(row["billed_usd"])),
    }

    # The executive page: the same figures, saying the same providers, days and coverage.
    page.open("/{ws}/executive")
    figure = page.page.locator("[data-figure=reconciliation]")
    assert page.figure("reconciliation") == shown["pct"] == shown_pct(row["variance_pct"])
    assert {part: money_part(figure, part) for part in ("logged", "compared", "billed")} == {
        part: shown[part] for part in ("logged", "compared", "billed")
    }
    assert money_part(figure, "logged") == page.figure("last_month")
    assert money_part(figure, "coverage") == row["coverage"]
    assert money_part(figure, "covers") == row["covers"]
    assert money_part(figure, "providers") == "Anthropic, Gemini, OpenAI and xAI"
    assert figure.locator("[data-status]").get_attribute("data-status") == "partial"
    unbilled = money(Decimal(row["unbilled_logged_usd"]))
    assert "Matches" not in figure.inner_text()
    assert money_part(figure, "unbilled") == f"Gemini: {unbilled} logged with no bill yet"
    headline = page.page.locator("p.headline").inner_text()
    assert row["coverage"] in headline and f"{unbilled} logged for Gemini has no bill yet" in headline
    page.screenshot(artifacts_dir, "contract-executive")


def shown_pct(value: str) -> str:
    """A variance percent as the pages print it (`rec.pct`)."""
    pct = Decimal(value)
    return "0.00%" if round(pct, 2) == 0 else f"{pct:+.2f}%"


def cover_text(pdf: bytes, tmp_path: Path) -> str:
    """The first page's text in the order it was laid out (pdftotext -raw: a KPI column stays whole, where
    -layout interleaves the columns), its lines joined."""
    (tmp_path / "report.pdf").write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-raw", "-enc", "UTF-8", "-f", "1", "-l", "1", str(tmp_path / "report.pdf"), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return " ".join(out.split())


def test_the_pdf_says_what_the_page_says(owner, unbilled_demo, artifacts_dir: Path, tmp_path: Path) -> None:
    row = month_total(owner, unbilled_demo.slug, last_month())
    pdf = generate_pdf(owner, f"/{unbilled_demo.slug}/executive.pdf")
    pdf_pages_png(pdf, artifacts_dir / "reports", prefix="contract-executive")
    text = cover_text(pdf, tmp_path)
    kpi = text[text.upper().index("RECONCILIATION") + len("RECONCILIATION") :]  # the label is in capitals
    assert kpi.startswith(f" {shown_pct(row['variance_pct'])} "), kpi[:300]
    for figure in ("logged_usd", "compared_logged_usd", "billed_usd"):
        assert money(Decimal(row[figure])) in kpi, figure
    assert row["coverage"] in kpi and row["covers"] in kpi and "Partly billed" in kpi
    unbilled = money(Decimal(row["unbilled_logged_usd"]))
    assert f"Gemini: {unbilled} logged with no bill yet" in kpi and "Matches" not in text


def test_one_previous_period_for_this_month(owner, unbilled_demo) -> None:
    slug = unbilled_demo.slug
    today = datetime.now(UTC).date()
    first = previous_month(today)
    last = min(first + timedelta(days=today.day - 1), month_start(today) - timedelta(days=1))
    overview = owner.get(f"/v1/{slug}/overview?range=this_month").json()
    executive = owner.get(f"/v1/{slug}/executive?range=this_month").json()
    said = overview["period"]["compared_with"]
    assert said == executive["month_to_date_compared_with"] == executive["period"]["compared_with"]
    assert f"{first:%d %b %Y} \u2013 {last:%d %b %Y}" in said
    assert re.match(r"the (same days|whole) of ", said)
    assert overview["period_change"]["previous_usd"] == executive["same_point_last_month"]["previous_usd"]
    assert Decimal(overview["period_change"]["previous_usd"]) == unbilled_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"
        " AND day BETWEEN %(a)s AND %(b)s",
        a=first,
        b=last,
    )
    # The pages say it in words: the overview's change and chart, the executive's month-to-date change.
    page = owner.get(f"/{slug}/overview?range=this_month").text
    assert page.count(said) >= 2
    assert said in owner.get(f"/{slug}/executive").text
