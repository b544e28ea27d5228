"""The catalogue's rate rows as raw.rate_rows: stored exactly as the meter prices with them, regexes RE2 runs,
and change detection (a new catalogue writes all its rows; the same one writes nothing)."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import pytest

from halton_meter.catalogue import load_catalogue
from halton_pipelines.price_card import RATE_ROW_COLUMNS, PriceCardError, card_rows, row_values
from halton_pipelines.raw_writes import changed_rate_rows, current_rate_rows, write_rate_rows

ROWS = card_rows(load_catalogue())


def test_a_leading_negative_lookahead_becomes_a_not_regex_clause_matching_the_same_names() -> None:
    [pro] = [r for r in ROWS if r.model == "gemini-2.5-pro" and r.mode == "standard"][:1]
    [[starts, negated]] = row_values(pro)[RATE_ROW_COLUMNS.index("match_rules")]
    assert starts == ("starts_with", "gemini-2.5-pro")
    kind, pattern = negated
    original = next(v for conj in pro.match_rules for k, v in conj if k == "regex")
    assert kind == "not_regex" and "(?!" not in pattern
    for name in ("gemini-2.5-pro", "gemini-2.5-pro-preview-tts", "gemini-2.5-pro-TTS-x", "x-tts-gemini", "tts"):
        assert (re.search(original, name) is not None) == (re.search(pattern, name) is None), name


def test_regexes_re2_cannot_run_and_inexact_amounts_are_refused_naming_the_model() -> None:
    row = ROWS[0]
    lookbehind = replace(row, match_rules=((("regex", "(?<=x)y"),),))
    with pytest.raises(PriceCardError, match=f"{row.provider}/{row.model}.*lookaround"):
        row_values(lookbehind)
    with pytest.raises(PriceCardError, match="lookaround"):
        row_values(replace(row, match_rules=((("regex", "^(?!a)b(?!c)"),),)))
    with pytest.raises(PriceCardError, match=f"{row.model}.*Decimal\\(18, 9\\)"):
        row_values(replace(row, input=(Decimal("0.0000000001"),)))


def test_only_changed_rows_are_written_and_a_new_catalogue_writes_all(stores) -> None:
    client = stores.client()
    assert current_rate_rows(client, stores.databases) == {}
    write_rate_rows(client, stores.databases, ROWS)
    current = current_rate_rows(client, stores.databases)
    assert len(current) == len(ROWS) and changed_rate_rows(ROWS, current) == []
    repriced = [replace(ROWS[0], input=(Decimal("1.5"),) * len(ROWS[0].input)), *ROWS[1:]]
    assert changed_rate_rows(repriced, current) == [repriced[0]]
    newer = [replace(row, catalogue="2027-01-01+000000000000") for row in ROWS]
    assert changed_rate_rows(newer, current) == newer
    write_rate_rows(client, stores.databases, newer)
    assert {v[0] for v in current_rate_rows(client, stores.databases).values()} == {"2027-01-01+000000000000"}
