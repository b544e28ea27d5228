"""Spend reports: periods, groups, and the rule that an unpriced call is never shown as $0."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from halton_meter.catalogue import load_catalogue
from halton_meter.report import (
    PeriodError,
    csv_rows,
    format_usd,
    parse_period,
    spend_report,
    unpriced_models,
)
from halton_meter.store import connect


def test_named_periods():
    today = date(2026, 3, 15)
    assert parse_period("today", today=today).start.date() == today
    seven = parse_period("7d", today=today)
    assert (seven.start.date(), seven.end.date()) == (date(2026, 3, 9), date(2026, 3, 16))
    assert parse_period("30d", today=today).start.date() == date(2026, 2, 14)
    month = parse_period("this-month", today=today)
    assert (month.start.date(), month.end.date()) == (date(2026, 3, 1), date(2026, 3, 16))
    last = parse_period("last-month", today=date(2026, 1, 10))
    assert (last.start.date(), last.end.date()) == (date(2025, 12, 1), date(2026, 1, 1))
    span = parse_period(None, date(2026, 3, 1), date(2026, 3, 2), today=today)
    assert (span.start.date(), span.end.date()) == (date(2026, 3, 1), date(2026, 3, 3))


def test_by_repository_branch_ticket_and_tool(home, seed):
    seed(cost="0.010", repository="shop", branch="feature/SHOP-1-cart", ticket="SHOP-1", tool="claude-code")
    seed(cost="0.020", repository="shop", branch="SHOP-1-follow-up", ticket="SHOP-1", tool="anthropic-python")
    seed(cost="0.004", repository="shop", branch="main", tool="anthropic-python")
    seed(cost="0.001")  # a call the meter could not place
    conn = connect(home.db, readonly=True)
    report = spend_report(conn, parse_period("today"), ("repository", "branch", "ticket", "tool"))
    costs = {dim: {g.key: g.cost_usd for g in groups} for dim, groups in report.groups.items()}
    assert costs["ticket"] == {"SHOP-1": Decimal("0.03"), "(none)": Decimal("0.005")}
    assert costs["branch"] == {
        "SHOP-1-follow-up": Decimal("0.02"),
        "feature/SHOP-1-cart": Decimal("0.01"),
        "main": Decimal("0.004"),
        "(unknown)": Decimal("0.001"),
    }
    assert costs["repository"] == {"shop": Decimal("0.034"), "(unknown)": Decimal("0.001")}
    assert costs["tool"] == {
        "anthropic-python": Decimal("0.024"),
        "claude-code": Decimal("0.01"),
        "(unknown)": Decimal("0.001"),
    }
    # The default breakdowns stay the four they were.
    assert list(spend_report(conn, parse_period("today")).groups) == ["project", "model", "provider", "day"]


def test_bad_periods():
    with pytest.raises(PeriodError, match="unknown period"):
        parse_period("fortnight")
    with pytest.raises(PeriodError, match="before"):
        parse_period(None, date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(PeriodError, match="not both"):
        parse_period("7d", date(2026, 3, 1))


def test_groups_totals_and_unpriced(home, seed):
    now = datetime.now(UTC)
    seed(project="web", model="gpt-4o", cost="0.010")
    seed(project="web", model="gpt-4o", cost="0.005")
    seed(project="api", provider="anthropic", model="claude-sonnet-4-5", cost="0.100")
    seed(project="api", model="gpt-mystery", cost=None, unpriced_reason="no price")
    seed(project="api", model="gpt-4o", cost=None, status=429, input_tokens=None, output_tokens=None)
    seed(project="old", cost="9.0", when=now - timedelta(days=40))
    conn = connect(home.db, readonly=True)
    report = spend_report(conn, parse_period("today"))
    totals = report.totals
    assert (totals.calls, totals.errors, totals.unpriced_calls) == (5, 1, 1)
    assert totals.cost_usd == Decimal("0.115000000")
    by_project = {g.key: g for g in report.groups["project"]}
    assert set(by_project) == {"web", "api"}
    assert by_project["api"].cost_usd == Decimal("0.1") and by_project["api"].unpriced_calls == 1
    by_model = {g.key: g for g in report.groups["model"]}
    assert by_model["gpt-mystery"].cost_usd is None  # unpriced: no cost, not $0
    assert by_model["gpt-mystery"].unpriced_calls == 1
    assert [g.key for g in report.groups["provider"]] == ["anthropic", "openai"]
    assert [g.key for g in report.groups["day"]] == [datetime.now().astimezone().date().isoformat()]
    month = spend_report(conn, parse_period("30d"))
    assert month.totals.calls == 5
    assert spend_report(conn, parse_period("all")).totals.calls == 6


def test_unpriced_calls_are_named_by_model_with_what_prices_them(home, seed):
    catalogue = load_catalogue()
    for _ in range(3):
        seed(provider="anthropic", model="claude-opus-9", cost=None, unpriced_reason="no price data")
    # Known to the catalogue in force (new in it), with tokens: a re-price prices them.
    seed(provider="anthropic", model="claude-sonnet-5", cost=None, unpriced_reason="no price data")
    # Known, but the stream ended before its usage: nothing can price it.
    seed(
        model="gpt-6-sol",
        cost=None,
        input_tokens=None,
        output_tokens=None,
        unpriced_reason="token counts unknown: the response ended before its usage was seen",
    )
    seed(model="gpt-6-sol", cost=None, status=500, input_tokens=None, output_tokens=None)  # an error
    seed(model="gpt-4o", cost="0.01")
    conn = connect(home.db, readonly=True)
    found = unpriced_models(conn, parse_period("today"), catalogue)
    assert [(u.provider, u.model, u.calls, u.in_catalogue) for u in found] == [
        ("anthropic", "claude-opus-9", 3, False),
        ("anthropic", "claude-sonnet-5", 1, True),
        ("openai", "gpt-6-sol", 1, True),
    ]
    v = catalogue.version
    assert [u.line() for u in found] == [
        f"3 calls of claude-opus-9 unpriced (no price in catalogue {v}); run `halton-meter rates update`",
        f"1 call of claude-sonnet-5 unpriced (no price data); catalogue {v} prices claude-sonnet-5:"
        " run `halton-meter reprice`",
        "1 call of gpt-6-sol unpriced (token counts unknown: the response ended before its usage was seen)",
    ]
    assert found[0].to_json()["message"] == found[0].line()
    assert unpriced_models(conn, parse_period("yesterday"), catalogue) == []


def test_csv_never_writes_zero_for_unpriced(home, seed):
    seed(model="gpt-mystery", cost=None)
    rows = csv_rows(spend_report(connect(home.db, readonly=True), parse_period("today"), ("model",)))
    total, model = rows
    assert total[0] == "total" and total[5] == "" and total[4] == "1"
    assert model[:2] == ["model", "gpt-mystery"] and model[5] == ""


def test_money_formatting():
    assert format_usd(None) == "—"
    assert format_usd(Decimal("12.3456")) == "$12.35"
    assert format_usd(Decimal("1234.5")) == "$1,234.50"
    assert format_usd(Decimal("0.0010815")) == "$0.001082"
    assert format_usd(Decimal("0.25")) == "$0.2500"
