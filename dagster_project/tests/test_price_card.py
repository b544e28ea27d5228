"""The genai-prices card as raw.model_prices rows: periods, tiers, match rules, change detection."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from halton_pipelines.demo_data import resolve_card_model
from halton_pipelines.price_card import card_rows
from halton_pipelines.raw_writes import changed_price_rows


def _rows(model: str):
    return [row for row in card_rows() if row.model == model]


def test_conditional_prices_become_periods() -> None:
    periods = _rows("o3")
    assert [(p.valid_from, p.input_mtok, p.output_mtok) for p in periods] == [
        (datetime(1970, 1, 1, tzinfo=UTC), Decimal("10"), Decimal("40")),
        (datetime(2025, 6, 10, tzinfo=UTC), Decimal("2"), Decimal("8")),
    ]


def test_tiers_and_anthropic_one_hour_writes() -> None:
    [pro] = _rows("gemini-2.5-pro")
    assert (pro.tier_threshold_tokens, pro.input_mtok, pro.input_mtok_above, pro.output_mtok_above) == (
        200_000,
        Decimal("1.25"),
        Decimal("2.5"),
        Decimal("15"),
    )
    assert pro.batch_multiplier == Decimal("0.5")
    [haiku] = _rows("claude-haiku-4-5")
    assert (haiku.cache_write_mtok, haiku.cache_write_1h_mtok) == (Decimal("1.25"), Decimal("2"))
    assert all(row.batch_multiplier is None for row in card_rows(["xai"]))


def test_served_names_resolve_to_the_first_matching_card_model() -> None:
    rows = card_rows()
    assert resolve_card_model(rows, "anthropic", "claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert resolve_card_model(rows, "openai", "gpt-5-mini-2025-08-07") == "gpt-5-mini"
    assert resolve_card_model(rows, "xai", "grok-4-0709") == "grok-4-0709"
    assert resolve_card_model(rows, "openai", "no-such-model") is None


def test_only_changed_rows_are_written_again() -> None:
    rows = card_rows(["xai"])
    current = {(r.provider, r.model, r.valid_from): tuple(r.values()) for r in rows}
    assert changed_price_rows(rows, current) == []
    first = rows[0]
    current[(first.provider, first.model, first.valid_from)] = ("stale",)
    assert changed_price_rows(rows, current) == [first]
