"""The pages' money formats: cents for totals, significant digits for one request's cost, never nothing for
something and never the warehouse's nine raw decimals."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import pairwise

import pytest

from halton_api.charts import CHAR_PX, Series, columns, exact_money, money, stacked_area, unit_money


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.049098572"), "$0.05"),
        (Decimal("0.004"), "<$0.01"),
        (Decimal("-0.001"), "-<$0.01"),
        (Decimal("0"), "$0.00"),
        (Decimal("-12.345"), "-$12.35"),
    ],
)
def test_totals_are_in_cents_and_never_read_as_nothing(value, shown) -> None:
    assert money(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.049098572"), "$0.0491"),
        (Decimal("0.000123456"), "$0.000123"),
        (Decimal("0.000000001"), "$0.000000001"),
        (Decimal("0.5"), "$0.50"),
        (Decimal("0.105"), "$0.105"),
        (Decimal("3"), "$3.00"),
        (Decimal("1234.56789"), "$1,234.57"),
        (Decimal("0"), "$0.00"),
        (Decimal("-0.0004567"), "-$0.000457"),
        (0.0021, "$0.0021"),
    ],
)
def test_a_request_cost_keeps_three_significant_digits(value, shown) -> None:
    assert unit_money(value) == shown


def test_the_exact_form_keeps_every_digit() -> None:
    assert exact_money(Decimal("0.049098572")) == "$0.049098572"


def _x_labels(svg: str) -> list[tuple[float, str]]:
    return [
        (float(x), text)
        for x, text in re.findall(
            r'<text x="([0-9.]+)" y="252" text-anchor="\w+" fill="[^"]+" font-size="11">([^<]+)</text>', svg
        )
    ]


def test_month_labels_never_collide_and_the_last_shows() -> None:
    months = [
        f"{m} 2026"
        for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    ]
    svg = str(columns(months, [Series("openai", [1] * 12)], title="t"))
    shown = _x_labels(svg)
    assert shown[-1][1] == "Dec 2026" and shown[0][1] == "Jan 2026"
    widest = max(len(t) for _, t in shown) * CHAR_PX
    assert all(b[0] - a[0] > widest for a, b in pairwise(shown))  # centred labels: no overlap


def test_every_bucket_has_a_hover_value_and_opens_its_requests() -> None:
    labels = ["01 Dec", "02 Dec", "03 Dec"]
    hrefs = [f"/ws/audit/requests?range=custom&from=2026-12-0{i}&to=2026-12-0{i}" for i in (1, 2, 3)]
    series = [Series("openai", [Decimal("1.5"), 0, Decimal("0.004")]), Series("anthropic", [1, 2, 3])]
    area = str(stacked_area(labels, series, title="t", hrefs=hrefs))
    assert (
        area.count('<rect class="hit"') == 3
        and "<title>01 Dec: $2.50 (openai $1.50; anthropic $1.00)</title>" in area
    )
    assert area.count("<a href=") == 3 and "from=2026-12-02&amp;to=2026-12-02" in area
    bars = str(columns(labels, series, title="t", hrefs=hrefs))
    assert "<title>03 Dec · openai: &lt;$0.01</title>" in bars and bars.count("<a href=") == 5  # one per bar
