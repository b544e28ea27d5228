"""The budget card under every filter: the budget that applies, the spend it covers, or why none applies."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import uuid4

from halton_api.dashboards.budgets import NOT_BUDGETED, budget_status, choose_budget
from halton_api.dashboards.filters import Filters
from halton_warehouse.budget_forecast import EarlierMonth, forecast, history_start, months_of_days

WORKSPACE = Decimal("1980")
PROJECTS = {"research-agents": Decimal("990"), "support-bot": Decimal("300")}


def test_no_filter_compares_the_workspace_budget_with_the_views_own_spend() -> None:
    chosen = choose_budget(Filters(), WORKSPACE, PROJECTS)
    assert (chosen.amount, chosen.scope, chosen.note) == (WORKSPACE, "workspace", None)


def test_a_provider_filter_keeps_the_workspace_budget_against_all_its_spend_and_says_so() -> None:
    chosen = choose_budget(Filters(providers=("openai",), devices=(uuid4(),)), WORKSPACE, PROJECTS)
    assert (chosen.amount, chosen.scope, chosen.skip) == (WORKSPACE, "workspace", NOT_BUDGETED)
    assert chosen.note is not None and "not set per provider or device" in chosen.note


def test_a_project_filter_shows_that_projects_budget() -> None:
    chosen = choose_budget(Filters(projects=("research-agents",), providers=("openai",)), WORKSPACE, PROJECTS)
    assert (chosen.amount, chosen.scope) == (Decimal("990"), "project")
    assert "provider" in (chosen.note or "")
    both = choose_budget(Filters(projects=("research-agents", "support-bot")), WORKSPACE, PROJECTS)
    assert (both.amount, both.scope, both.note) == (Decimal("1290"), "projects", None)


def test_a_project_without_a_budget_says_why_none_applies() -> None:
    chosen = choose_budget(Filters(projects=("batch",)), WORKSPACE, PROJECTS)
    assert chosen.amount is None
    assert (
        chosen.note
        == "No budget for project batch; the workspace budget ($1,980.00) covers every project together"
    )
    nothing = choose_budget(Filters(providers=("openai",)), None, {})
    assert nothing.amount is None and nothing.note.startswith("No budget set")


RND, OPS = str(uuid4()), str(uuid4())
CENTERS = {RND: ("R&D", Decimal("700")), OPS: ("Ops", None)}


def test_a_cost_center_filter_shows_that_cost_centers_budget_against_its_whole_spend() -> None:
    chosen = choose_budget(Filters(cost_centers=(RND,)), WORKSPACE, PROJECTS, CENTERS)
    # The cost center filter stays on the spend (its budget covers its projects); nothing else is filtered.
    assert (chosen.amount, chosen.scope, chosen.note) == (Decimal("700"), "cost center", None)
    assert "cost_center" not in chosen.skip and "provider" in chosen.skip
    sliced = choose_budget(Filters(cost_centers=(RND,), models=("gpt-4o",)), WORKSPACE, PROJECTS, CENTERS)
    assert sliced.amount == Decimal("700") and "not set per model" in (sliced.note or "")
    assert "cost center" not in (sliced.note or "")


def test_a_cost_center_without_a_budget_says_why_none_applies() -> None:
    chosen = choose_budget(Filters(cost_centers=(RND, OPS)), WORKSPACE, PROJECTS, CENTERS)
    assert chosen.amount is None
    assert chosen.note == (
        "No budget for cost center Ops; the workspace budget ($1,980.00) covers every cost center together"
    )
    unassigned = choose_budget(Filters(cost_centers=("unassigned",)), None, {}, CENTERS)
    assert unassigned.amount is None and unassigned.note == "No budget for cost center Unassigned"
    # A project filter wins: the project's budget, whatever cost center is chosen too.
    both = choose_budget(
        Filters(projects=("support-bot",), cost_centers=(RND,)), WORKSPACE, PROJECTS, CENTERS
    )
    assert (both.amount, both.scope) == (Decimal("300"), "project")


# The card's "heading for" is the alerts' forecast (halton_warehouse.budget_forecast), and says its basis.
NOVEMBER_15 = date(2026, 11, 15)


def _back_loaded() -> EarlierMonth:
    """$1 a day to the 15th, then $3 a day: a quarter of the month's $60 by the 15th."""
    return EarlierMonth(tuple([Decimal(1)] * 15 + [Decimal(3)] * 15))


def test_the_card_projects_the_month_as_the_alerts_do_and_says_on_what() -> None:
    earlier = [_back_loaded()] * 3
    card = budget_status(Decimal(100), Decimal(30), NOVEMBER_15, scope="cost center", earlier=earlier)
    alert = forecast(
        period=NOVEMBER_15.replace(day=1), budget_usd=Decimal(100), spend_usd=Decimal(30), days_elapsed=15,
        days_in_period=30, earlier=earlier,
    )  # fmt: skip
    # The run rate alone says $60 (under); the earlier months' shape says $120: (60 + 3 x 120) / 4 = $105.
    assert card is not None and (card.projected_usd, card.status) == (Decimal("105.00"), "at_risk")
    assert card.projected_usd == alert.projected_usd
    assert card.projection_basis == alert.basis == "run rate and the same days of 3 earlier months"
    alone = budget_status(Decimal(100), Decimal(30), NOVEMBER_15, scope="workspace", earlier=[])
    assert alone is not None and (alone.projected_usd, alone.status, alone.projection_basis) == (
        Decimal("60.00"), "under", "run rate",
    )  # fmt: skip


def test_earlier_months_come_from_days_and_reach_back_three_months() -> None:
    assert history_start(date(2026, 2, 1)) == date(2025, 11, 1)
    days = [
        (date(2026, 10, 20), Decimal(8)),
        (date(2026, 9, 3), Decimal(5)),
        (date(2026, 10, 5), Decimal(12)),
    ]
    september, october = months_of_days(days)
    assert (september.total, september.on(3), october.total, october.on(5), october.on(20)) == (
        5,
        5,
        20,
        12,
        8,
    )
