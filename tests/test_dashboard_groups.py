"""Cost centers (roll-ups, creating one, moving a project) and prompt clusters, in a real browser."""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from cloud_support import first_day
from halton_api.charts import money
from halton_warehouse.budget_forecast import Forecast, forecast, history_start, months_of_days


def centres(built_demo) -> dict[str, str]:
    with psycopg.connect(built_demo.database_url) as conn:
        rows = conn.execute(
            "SELECT p.slug, coalesce(c.name, 'Unassigned') FROM projects p LEFT JOIN cost_centers c"
            " ON c.id = p.cost_center_id"
        ).fetchall()
    return dict(rows)


def rollup(built_demo) -> dict[str, str]:
    mapping = centres(built_demo)
    totals = defaultdict(int)
    for project, spend in built_demo.query(
        "SELECT project, sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " GROUP BY project",
        d=first_day(),
    ):
        totals[mapping.get(project, "Unassigned")] += spend
    return {name: money(value) for name, value in totals.items()}


def test_cost_center_rollup_and_moving_a_project(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/cost-centers")
    shown = {row[0]: row[2] for row in demo_page.table("cost-centers")}
    assert shown == rollup(built_demo)
    demo_page.screenshot(artifacts_dir, "cost-centers")

    page = demo_page.page
    page.fill("input[name=name]", "Test Lab")
    page.click("form[action$='/cost-centers'] button")
    page.wait_for_url("**notice=**")
    assert "Test Lab" in [row[0] for row in demo_page.table("cost-centers")]
    page.select_option("select[name=project_id]", label="Docs search (Internal Tools)")
    page.select_option("select[name=cost_center_id]", label="Test Lab")
    page.click("form[action$='/cost-centers/assign'] button")
    page.wait_for_url("**notice=**")
    shown = {row[0]: row[2] for row in demo_page.table("cost-centers")}
    assert shown == rollup(built_demo)  # the move counts at once, before any marts run
    assert shown["Test Lab"] != money(0)
    # Put it back: other tests read the demo's cost centers.
    page.select_option("select[name=project_id]", label="Docs search (Test Lab)")
    page.select_option("select[name=cost_center_id]", label="Internal Tools")
    page.click("form[action$='/cost-centers/assign'] button")
    page.wait_for_url("**notice=**")


def test_cost_center_filter_on_the_overview(demo_page, built_demo) -> None:
    with psycopg.connect(built_demo.database_url) as conn:
        (centre_id,) = conn.execute("SELECT id FROM cost_centers WHERE name = 'R&D'").fetchone()
        slugs = [
            s for (s,) in conn.execute("SELECT slug FROM projects WHERE cost_center_id = %s", (centre_id,))
        ]
    demo_page.open(f"/{{ws}}/overview?cost_center={centre_id}")
    expected = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND project IN %(p)s",
        d=first_day(),
        p=tuple(slugs),
    )
    assert demo_page.figure("period") == money(expected)
    # No budget of its own: the card says so, and that the workspace's covers every cost center together.
    budget = demo_page.page.locator("[data-figure=budget]").inner_text()
    assert "No budget for cost center R&D; the workspace budget" in budget

    # With one, the card compares it with the cost center's month so far, and so does the cost centers page.
    month = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND project IN %(p)s",
        d=datetime.now(UTC).date().replace(day=1),
        p=tuple(slugs),
    )
    with psycopg.connect(built_demo.database_url) as conn:
        conn.execute(
            "INSERT INTO budgets (workspace_id, cost_center_id, monthly_amount)"
            " SELECT workspace_id, id, 700 FROM cost_centers WHERE id = %s",
            (centre_id,),
        )
    try:
        demo_page.open(f"/{{ws}}/overview?cost_center={centre_id}")
        budget = demo_page.page.locator("[data-figure=budget]")
        assert f"{money(month)} of $700.00" in budget.inner_text()
        # Where it is heading is the budget alerts' forecast, from the cost center's earlier months, and says so.
        heading = _forecast(built_demo, slugs, Decimal(700), month or Decimal(0))
        assert budget.locator("[data-budget-projected]").inner_text() == (
            f"{money(heading.projected_usd.quantize(Decimal('0.01')))} ({heading.basis})"
        )
        assert "earlier month" in heading.basis  # the demo's 90 days reach back before this month
        assert demo_page.page.locator("dt", has_text="Budget this month (cost center)").count() == 1
        demo_page.open("/{ws}/cost-centers")
        row = next(r for r in demo_page.table("cost-centers") if r[0] == "R&D")
        assert row[-1] == f"{money(month)} of $700.00"
    finally:  # other tests read the demo's budgets
        with psycopg.connect(built_demo.database_url) as conn:
            conn.execute("DELETE FROM budgets WHERE cost_center_id = %s", (centre_id,))


def _forecast(built_demo, slugs: list[str], budget: Decimal, month_to_date: Decimal) -> Forecast:
    today = datetime.now(UTC).date()
    this_month = today.replace(day=1)
    days = built_demo.query(
        "SELECT day, sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(h)s"
        " AND day < %(m)s AND project IN %(p)s GROUP BY day",
        h=history_start(this_month),
        m=this_month,
        p=tuple(slugs),
    )
    return forecast(
        period=this_month,
        budget_usd=budget,
        spend_usd=month_to_date,
        days_elapsed=today.day,
        days_in_period=calendar.monthrange(today.year, today.month)[1],
        earlier=months_of_days(days),
    )


def test_clusters_are_the_requests_grouped_by_prompt(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/clusters")
    clusters, requests = built_demo.query(
        "SELECT count(), sum(n) FROM (SELECT prompt_hash, count() AS n FROM {marts}.requests"
        " WHERE workspace_id = '{ws}' AND day >= %(d)s AND prompt_hash IS NOT NULL GROUP BY prompt_hash HAVING n >= 2)",
        d=first_day(),
    )[0]
    assert demo_page.figure("clusters") == f"{clusters:,}"
    assert demo_page.figure("requests") == f"{requests:,}"
    demo_page.screenshot(artifacts_dir, "clusters")
    demo_page.page.click("nav.tabs a:has-text('Loops')")
    demo_page.page.wait_for_url("**kind=loop**")
    kinds = {row[1] for row in demo_page.table("clusters")}
    assert kinds == {"loop"}
