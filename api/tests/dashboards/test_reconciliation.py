"""The reconciliation's pure parts: the colour rule (checked against the dbt macro itself, run by ClickHouse),
the all-providers row, and the pasted statement's input checks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import jinja2
import pytest

from halton_api.dashboards.page_models import ReconciliationRow
from halton_api.dashboards.reconciliation import (
    all_providers,
    parse_cursor,
    parse_month,
    statement_input,
    variance_pct,
    variance_status,
)
from halton_api.errors import Invalid

MACROS = Path(__file__).parents[3] / "dbt" / "macros" / "money.sql"
D = Decimal

# (logged, billed): around every threshold, both signs, zero and missing bills, sub-cent amounts.
CASES = [
    (D("100"), None), (D("0"), D("0")), (D("1"), D("0")), (D("100"), D("100")),
    (D("100.49"), D("100")), (D("100.4999"), D("100")), (D("100.49995"), D("100")), (D("100.5"), D("100")),
    (D("99.5"), D("100")), (D("99.50001"), D("100")), (D("102"), D("100")), (D("102.00004"), D("100")),
    (D("102.00005"), D("100")), (D("102.0001"), D("100")), (D("98"), D("100")), (D("97.99"), D("100")),
    (D("0.000000001"), D("0.000000002")), (D("342.18"), D("342.04")), (D("56.143379"), D("52.9688")),
    (D("0"), D("12.5")), (D("1.000000003"), D("3")),
]  # fmt: skip


def test_the_thresholds() -> None:
    def status(logged: str, billed: str | None) -> str:
        b = None if billed is None else D(billed)
        v = None if b is None else D(logged) - b
        return variance_status(v, b, variance_pct(v, b))

    assert status("100.49", "100") == "sage"  # 0.49%
    assert status("100.5", "100") == "amber"  # 0.5% is amber
    assert status("99.5", "100") == "amber"
    assert status("102", "100") == "amber"  # 2% inclusive
    assert status("102.01", "100") == "red"
    assert status("97.9", "100") == "red"
    assert status("5", None) == "unbilled"
    assert status("0", "0") == "sage" and status("1", "0") == "red"
    assert variance_pct(D("3.174579"), D("52.9688")) == D("5.9933")  # the demo's red xAI month


def test_the_python_rule_is_the_dbt_macro(warehouse) -> None:
    """Render `percent_of` and `variance_status` from dbt/macros/money.sql and run them in ClickHouse."""
    macros = MACROS.read_text()
    pct = jinja2.Template(macros + "{{ percent_of('v', 'b') }}").render()
    status = jinja2.Template(macros + "{{ variance_status('v', 'b', 'p') }}").render()
    rows = " UNION ALL ".join(
        f"SELECT {i} AS i, toDecimal64('{logged}', 9) AS l,"
        f" {'CAST(NULL AS Nullable(Decimal64(9)))' if billed is None else f'toNullable(toDecimal64({str(billed)!r}, 9))'} AS b"
        for i, (logged, billed) in enumerate(CASES)
    )
    query = (
        f"SELECT i, v, p, {status} AS s FROM (SELECT i, b, v, {pct} AS p FROM"
        f" (SELECT i, b, if(b IS NULL, NULL, toDecimal64(l - b, 9)) AS v FROM ({rows}))) ORDER BY i"
    )
    rows = warehouse.client().query(query).result_rows
    assert len(rows) == len(CASES)
    for i, v, p, s in rows:
        logged, billed = CASES[i]
        ours_v = None if billed is None else logged - billed
        ours_p = variance_pct(ours_v, billed)
        assert (v, p) == (ours_v, ours_p), CASES[i]
        assert s == variance_status(ours_v, billed, ours_p), (CASES[i], s)


def _row(provider: str, logged: str, billed: str | None, source: str = "billing_api") -> ReconciliationRow:
    b = None if billed is None else D(billed)
    v = None if b is None else D(logged) - b
    p = variance_pct(v, b)
    return ReconciliationRow(
        period=date(2026, 10, 1), period_label="2026-10", provider=provider, requests=10, logged_usd=D(logged),
        billed_usd=b, billed_source=source if b is not None else "none", variance_usd=v, variance_pct=p,
        status=variance_status(v, b, p), divergent_days=1,
    )  # fmt: skip


def test_all_providers_compare_only_what_was_billed() -> None:
    row = all_providers(
        [_row("anthropic", "100", "99.9"), _row("gemini", "40", None), _row("xai", "56.14", "52.97")]
    )
    assert row.provider is None and row.logged_usd == D("196.14") and row.billed_usd == D("152.87")
    assert row.compared_logged_usd == D("156.14") and row.variance_usd == D("3.27")
    # Gemini's $40 has no bill: the month is partial, never a colour of its own; the billed part is red.
    assert row.variance_pct == D("2.1391") and row.status == "partial" and row.billed_status == "red"
    assert row.unbilled_providers == ["gemini"] and row.billed_source == "billing_api"
    assert row.unbilled_logged_usd == D("40") and row.coverage_pct == D("79.6")
    assert row.coverage == "billed data for 2 of 3 providers, 79% of logged spend"
    assert row.providers == ["anthropic", "gemini", "xai"] and row.billed_providers == ["anthropic", "xai"]
    assert row.requests == 30 and row.divergent_days == 3
    mixed = all_providers([_row("anthropic", "100", "100.1"), _row("gemini", "50", "50", "statement")])
    assert mixed.billed_source == "mixed" and mixed.status == "sage"
    nothing = all_providers([_row("gemini", "40", None)])
    assert nothing.status == "unbilled" and nothing.billed_usd is None and nothing.variance_pct is None


def test_a_statement_names_the_field_that_is_wrong() -> None:
    today = date(2026, 11, 23)
    ok = statement_input(" Gemini ", "2026-10", "$1,234.50", " invoice 42 ", today=today)
    assert (ok.provider, ok.period, ok.amount_usd, ok.note) == (
        "gemini",
        date(2026, 10, 1),
        D("1234.50"),
        "invoice 42",
    )
    assert (
        statement_input("xai", "2026-11", "0", "", today=today).amount_usd == 0
    )  # the current month is fine
    for args, field in (
        (("mistral", "2026-10", "1"), "provider"),
        (("openai", "2026-13", "1"), "month"),
        (("openai", "10/2026", "1"), "month"),
        (("openai", "2026-12", "1"), "month"),  # not started yet
        (("openai", "2026-10", "-5"), "amount"),
        (("openai", "2026-10", "twelve"), "amount"),
        (("openai", "2026-10", ""), "amount"),
        (("openai", "2026-10", "NaN"), "amount"),
        (("openai", "2026-10", "1e12"), "amount"),
        (("openai", "2026-10", "0.0000000001"), "amount"),
    ):
        with pytest.raises(Invalid) as raised:
            statement_input(*args, "", today=today)
        assert raised.value.detail.startswith(f"{field}: "), raised.value.detail
    assert parse_month("2026-04") == date(2026, 4, 1)
    with pytest.raises(Invalid, match=r"^period: "):
        parse_month("2026-4", field="period")


def test_cursors() -> None:
    assert parse_cursor(None) == 0 and parse_cursor("200") == 200
    for bad in ("-100", "abc", "150"):
        with pytest.raises(Invalid, match=r"^cursor: "):
            parse_cursor(bad)
