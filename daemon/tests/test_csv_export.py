"""The product's one CSV writer: formula cells neutralised (OWASP), numbers kept as numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from halton_meter.csv_export import SafeCsvWriter, safe_cell


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","x")',
        "=1+1",
        "+1+1",
        "-1+1",
        "@SUM(A1)",
        "\t=1+1",
        "\r=1+1",
        "-inf",
        "+1 555 0100",
        "-",
        "=",
    ],
)
def test_a_formula_becomes_text(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell",
    [
        "-1.5",
        "+2",
        "-0.000000001",
        "1E-9",
        "-3e+5",
        ".5",
        "-.5",
        "12",
        Decimal("-1.5"),
        -7,
        0.25,
        Decimal("1E-9"),
    ],
)
def test_a_number_stays_a_number(cell) -> None:
    assert safe_cell(cell) == cell


@pytest.mark.parametrize("cell", ["web", "gpt-4o", "a=b", "x-1", "", None, True, " =1+1"])
def test_anything_else_is_left_alone(cell) -> None:
    assert safe_cell(cell) == cell


def test_the_writer_neutralises_every_cell_and_round_trips() -> None:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer, lineterminator="\n")
    writer.writerow(["project", "cost_usd"])
    writer.writerows([["=cmd|' /C calc'!A0", Decimal("-1.5")], ["web", None]])
    assert list(csv.reader(io.StringIO(buffer.getvalue()))) == [
        ["project", "cost_usd"],
        ["'=cmd|' /C calc'!A0", "-1.5"],
        ["web", ""],
    ]
