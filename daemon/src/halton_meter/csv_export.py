"""The one CSV writer of the product (`halton-meter report --csv` and every CSV the cloud serves): cells that a
spreadsheet would run as a formula are neutralised (OWASP "CSV injection").

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets; a project name, a model, an audit detail or a device name is typed by someone,
so such a cell gets a leading ``'``, which the spreadsheet shows as text and never evaluates.

Numbers stay numbers: a cell that is a plain decimal number (``-1.5``, ``+2``, ``1E-9``, a Decimal or an int)
is written as it is, so a negative cost or a credit line still sums in a spreadsheet. No formula can hide in a
plain number, so this lets nothing through. Everything else (``-1+2``, ``-inf``, ``+1 555 0100``) is text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet may read it: unchanged, or text with a leading ``'`` if it would be a formula."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return value


class SafeCsvWriter:
    """`csv.writer` with every cell passed through `safe_cell`."""

    def __init__(self, stream: Any, **fmtparams: Any) -> None:
        self._writer = csv.writer(stream, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
