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
