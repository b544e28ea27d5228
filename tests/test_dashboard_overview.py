"""The overview in a real browser on the demo workspace: its figures are the marts' figures, the rail filters
them and lands in the URL, and the JSON twin says the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dashboard_clients import signed_in
from halton_api.charts import money
from halton_api.dashboards.model_names import base_model


def month_start():
    return datetime.now(UTC).date().replace(day=1)


def test_overview_figures_are_the_marts(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/overview")
    this_month = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(m)s",
        m=month_start(),
    )
    assert demo_page.figure("this_month") == money(this_month)
    first = datetime.now(UTC).date() - timedelta(days=29)
    period = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s", d=first
    )
    assert demo_page.figure("period") == money(period)
    top = built_demo.query(
        "SELECT project, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " GROUP BY project ORDER BY s DESC, project LIMIT 5",
        d=first,
    )
    shown = demo_page.table("top-projects")
    assert [row[1] for row in shown] == [money(s) for _, s in top]
    assert demo_page.page.locator("[data-sync]").get_attribute("data-sync") == "green"
    assert demo_page.page.locator("figure.chart > svg").count() == 1
    demo_page.screenshot(artifacts_dir, "overview")


def test_a_filter_changes_the_figures_and_the_url(demo_page, built_demo, artifacts_dir) -> None:
    demo_page.open("/{ws}/overview")
    before = demo_page.figure("this_month")
    page = demo_page.page
    page.locator("details.multi summary", has_text="Provider").click()
    page.check("input[name=provider][value=openai]")
    page.keyboard.press("Escape")  # the list closes, as a select's would
    assert page.locator("details.multi[open]").count() == 0
    # Not applied yet, and the rail says so; the model list already follows the chosen provider.
    assert page.locator("[data-pending]").inner_text() == "1 change not applied yet: press Apply"
    listed = page.locator("input[name=model]").evaluate_all(
        "boxes => boxes.map(b => [b.closest('label').dataset.provider, !b.closest('label').hidden])"
    )
    assert {p for p, shown in listed if shown} == {"openai"} and any(p == "anthropic" for p, _ in listed)
    page.click("form[data-rail] button[type=submit]")
    page.wait_for_url("**provider=openai**")
    openai = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(m)s"
        " AND provider = 'openai'",
        m=month_start(),
    )
    assert demo_page.figure("this_month") == money(openai) != before
    # The budget card under a provider filter: the workspace budget against all of its spend, said on the card.
    budget = page.locator("[data-figure=budget]")
    assert "of $" in budget.inner_text() and "not set per provider" in budget.inner_text()
    assert "No budget set" not in budget.inner_text()
    page.click("input[name=range][value='7d'] + span")
    page.wait_for_url("**range=7d**")
    assert "provider=openai" in page.url  # the rest of the rail is kept
    first = datetime.now(UTC).date() - timedelta(days=6)
    week = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND provider = 'openai'",
        d=first,
    )
    assert demo_page.figure("period") == money(week)
    demo_page.screenshot(artifacts_dir, "overview-filtered")


def test_the_model_list_folds_dated_ids_and_a_model_matches_its_snapshots(
    demo_page, demo_cloud, built_demo
) -> None:
    demo_page.open("/{ws}/overview")
    values = demo_page.page.locator("input[name=model]").evaluate_all("boxes => boxes.map(b => b.value)")
    assert "claude-sonnet-4-5" in values and "claude-sonnet-4-5-20250929" not in values
    assert all(base_model(v) == v for v in values) and len(values) == len(set(values))
    assert all(base_model(row[0]) == row[0] for row in demo_page.table("top-models"))  # folded there too
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    body = client.get(
        f"/v1/{built_demo.slug}/overview", params={"range": "this_month", "model": "claude-sonnet-4-5"}
    ).json()
    both = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(m)s"
        " AND model IN ('claude-sonnet-4-5', 'claude-sonnet-4-5-20250929')",
        m=month_start(),
    )
    assert Decimal(body["this_month_usd"]) == both


def test_the_json_twin_and_bad_filters(demo_cloud, built_demo) -> None:
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    body = client.get(f"/v1/{built_demo.slug}/overview", params={"range": "this_month"}).json()
    this_month = built_demo.scalar(
        "SELECT sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day >= %(m)s",
        m=month_start(),
    )
    assert Decimal(body["this_month_usd"]) == this_month == Decimal(body["period_totals"]["spend_usd"])
    assert body["filters"]["range"] == "this_month"
    for params, named in (
        ({"range": "fortnight"}, "range"),
        ({"provider": "mistral"}, "provider"),
        ({"range": "custom", "from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({"range": "custom", "from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"device": "not-a-uuid"}, "device"),
    ):
        response = client.get(f"/v1/{built_demo.slug}/overview", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"].startswith(named), response.json()
    assert client.get(f"/v1/{built_demo.slug}/overview", params={"range": "24h"}).status_code == 200


def test_pages_fit_a_laptop_screen_and_keep_their_labels(demo_page, artifacts_dir) -> None:
    """At 1280 x 800 no page scrolls sideways, every form control has a label, every chart a title."""
    page = demo_page.page
    page.set_viewport_size({"width": 1280, "height": 800})
    for path in ("overview", "projects/acme-batch-summariser", "reconciliation", "executive", "cost-centers",
                 "clusters", "optimization", "audit"):  # fmt: skip
        demo_page.open(f"/{{ws}}/{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 1280px"
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                               && !el.getAttribute('aria-labelledby') && !el.closest('label'))
                 .map(el => el.name || el.id)"""
        )
        assert unlabelled == [], f"{path}: unlabelled controls {unlabelled}"
        untitled = page.evaluate(
            "[...document.querySelectorAll('svg:not([aria-hidden=true])')].filter(s => !s.querySelector('title')).length"
        )
        assert untitled == 0, f"{path}: a chart without a title"
        demo_page.screenshot(artifacts_dir, f"laptop-{path.replace('/', '-')}")


def test_the_overview_names_the_models_of_unpriced_calls(demo_page, built_demo, artifacts_dir) -> None:
    first = datetime.now(UTC).date() - timedelta(days=29)
    expected = built_demo.query(
        "SELECT provider, model, count() AS n FROM {marts}.requests WHERE workspace_id = '{ws}' AND day >= %(d)s"
        " AND cost_source = 'unpriced' AND NOT is_error GROUP BY provider, model ORDER BY n DESC, provider, model"
        " LIMIT 10",
        d=first,
    )
    assert expected, "the demo's interrupted streams are answered calls nobody can price"
    demo_page.open("/{ws}/overview")
    items = demo_page.page.locator("[data-unpriced] li")
    assert [items.nth(i).get_attribute("data-unpriced-model") for i in range(items.count())] == [
        f"{provider}/{model}" for provider, model, _ in expected
    ]
    for i, (_, model, n) in enumerate(expected):
        assert (
            items.nth(i).inner_text().startswith(f"{n:,} call{'s' if n != 1 else ''} of {model} unpriced (")
        )
    twin = demo_page.page.request.get(f"/v1/{built_demo.slug}/overview").json()
    assert [(u["provider"], u["model"], u["requests"]) for u in twin["unpriced"]] == [
        tuple(r) for r in expected
    ]
    assert [u["message"] for u in twin["unpriced"]] == items.all_inner_texts()
    demo_page.page.locator("[data-unpriced]").scroll_into_view_if_needed()
    demo_page.screenshot(artifacts_dir, "overview-unpriced")
