"""The budget card under every filter: the budget that applies, the spend it covers, or why none applies."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from halton_api.dashboards.budgets import NOT_BUDGETED, choose_budget
from halton_api.dashboards.filters import Filters

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
