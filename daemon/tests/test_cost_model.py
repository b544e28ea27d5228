"""The one cost model: the catalogue's rate rows and the rules pricing.py applies to them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources

import pytest

from halton_meter.catalogue import parse_catalogue
from halton_meter.catalogue.rate_rows import EPOCH, rate_rows
from halton_meter.pricing import CallFacts, PriceBook, call_mode

M = Decimal(1_000_000)
DAY = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def packaged() -> dict:
    return json.loads(resources.files("halton_meter.catalogue").joinpath("rates.json").read_text())


BOOK = PriceBook()


def facts(provider: str, model: str, inp: int, out: int, **kw) -> CallFacts:
    return CallFacts(
        provider=provider,
        models=(model,),
        started_at=kw.pop("at", DAY),
        input_tokens=inp,
        output_tokens=out,
        **kw,
    )


@pytest.mark.parametrize(
    ("provider", "tier", "batch", "mode"),
    [
        ("openai", "flex", False, "flex"),
        ("openai", "priority", False, "priority"),
        ("openai", "default", False, "standard"),
        ("openai", None, True, "batch"),
        ("anthropic", "batch", False, "batch"),
        ("anthropic", "priority", False, "standard"),  # Priority Tier is billed at standard rates
        ("gemini", "FLEX", False, "flex"),
        ("xai", None, False, "standard"),
    ],
)
def test_call_mode(provider: str, tier: str | None, batch: bool, mode: str) -> None:
    assert call_mode(provider, tier, batch) == mode


def test_new_models_of_every_provider_are_priced() -> None:
    for provider, model in [
        ("anthropic", "claude-sonnet-5"),
        ("anthropic", "claude-opus-5"),
        ("openai", "gpt-6-sol"),
        ("gemini", "gemini-3.5-flash"),
        ("xai", "grok-4.5"),
    ]:
        price = BOOK.price_facts(facts(provider, model, 1000, 100))
        assert price.cost_usd is not None and price.cost_usd > 0, (provider, model, price.unpriced_reason)
        assert price.price_card.startswith(f"catalogue {BOOK.catalogue.version}:{provider}/")


def test_us_only_inference_multiplies_every_token_kind_not_fees() -> None:
    base = facts(
        "anthropic", "claude-sonnet-4-6", 10_000, 1000, cache_read_tokens=4000, web_search_requests=2
    )
    glob = BOOK.price_facts(base)
    us = BOOK.price_facts(CallFacts(**{**base.__dict__, "region": "us"}))
    tokens = (6000 * Decimal(3) + 4000 * Decimal("0.3") + 1000 * Decimal(15)) / M
    fees = 2 * Decimal(10) / 1000
    assert glob.cost_usd == tokens + fees
    assert us.cost_usd == tokens * Decimal("1.1") + fees
    assert us.price_card.endswith("+region:usx1.1+web-search")
    # A region the model has no multiplier for is priced at standard rates.
    assert BOOK.price_facts(CallFacts(**{**base.__dict__, "region": "global"})).cost_usd == glob.cost_usd


def test_provider_errors_without_usage_are_a_known_zero() -> None:
    for status in (429, 500, 529):
        price = BOOK.price_facts(facts("anthropic", "claude-sonnet-4-6", None, None, status_code=status))  # type: ignore[arg-type]
        assert price.cost_usd == Decimal(0) and price.unpriced_reason is None
        assert f"HTTP {status}, not billed" in price.price_card
    # An error that still reports usage is priced by it (the provider bills what it says it used).
    assert BOOK.price_facts(facts("anthropic", "claude-sonnet-4-6", 1000, 0, status_code=500)).cost_usd > 0


def test_unknown_model_is_unpriced_and_names_the_catalogue() -> None:
    price = BOOK.price_facts(facts("anthropic", "claude-opus-99", 1000, 10))
    assert price.cost_usd is None
    assert BOOK.catalogue.version in price.unpriced_reason
    assert "halton-meter rates update" in price.unpriced_reason


def test_batch_falls_back_to_half_price_where_the_provider_publishes_it() -> None:
    # claude-3-haiku has no batch entry in the sources: Anthropic's published rule (50% off) prices it.
    price = BOOK.price_facts(facts("anthropic", "claude-3-haiku-20240307", 10_000, 1000, mode="batch"))
    assert price.cost_usd == (10_000 * Decimal("0.25") + 1000 * Decimal("1.25")) / M / 2
    assert price.price_card.endswith("+batch+batch@50%-published")


def _one_model_catalogue(edit) -> PriceBook:
    doc = packaged()
    doc["version"] = "test+1"
    model = copy.deepcopy(next(m for m in doc["models"] if m["provider"] == "xai" and m["id"] == "grok-4.3"))
    edit(model)
    doc["models"] = [model]
    return PriceBook(catalogue=parse_catalogue(doc))


def test_a_mode_without_price_at_a_provider_without_a_rule_is_unpriced_never_standard() -> None:
    book = _one_model_catalogue(lambda m: m.pop("modes", None))
    price = book.price_facts(facts("xai", "grok-4.3", 1000, 10, mode="batch"))
    assert price.cost_usd is None
    assert "batch rates for xai/grok-4.3" in price.unpriced_reason


def test_flex_without_its_own_price_takes_the_batch_price() -> None:
    book = _one_model_catalogue(lambda m: None)
    flex = book.price_facts(facts("xai", "grok-4.3", 1000, 10, mode="flex"))
    batch = book.price_facts(facts("xai", "grok-4.3", 1000, 10, mode="batch"))
    assert flex.cost_usd == batch.cost_usd == (1000 * Decimal(1) + 10 * Decimal(2)) / M
    assert flex.price_card.endswith("+flex+flex@batch-rates")


def test_tiers_apply_strictly_above_the_threshold_to_the_whole_request() -> None:
    # grok-4.3: tier above 199,999 prompt tokens doubles every rate.
    at = BOOK.price_facts(facts("xai", "grok-4.3", 199_999, 1000))
    above = BOOK.price_facts(facts("xai", "grok-4.3", 200_000, 1000, cache_read_tokens=100_000))
    assert at.cost_usd == (199_999 * Decimal("1.25") + 1000 * Decimal("2.5")) / M
    assert above.cost_usd == (100_000 * Decimal("2.5") + 100_000 * Decimal("0.4") + 1000 * Decimal(5)) / M
    assert above.price_card.endswith("+long-context>199999")


def test_a_dated_price_applies_from_its_day_and_earlier_rows_keep_the_older_price() -> None:
    def cut(model: dict) -> None:
        newer = copy.deepcopy(model["prices"][-1])
        newer.update({"from": "2026-11-15", "source": "test"})
        newer["rates"] = {**newer["rates"], "input": "1", "output": "2"}
        newer.pop("tiers", None)
        model["prices"].append(newer)

    book = _one_model_catalogue(cut)
    before = book.price_facts(
        facts("xai", "grok-4.3", 1000, 1000, at=datetime(2026, 11, 14, 23, 59, tzinfo=UTC))
    )
    after = book.price_facts(facts("xai", "grok-4.3", 1000, 1000, at=datetime(2026, 11, 15, tzinfo=UTC)))
    assert before.cost_usd == (1000 * Decimal("1.25") + 1000 * Decimal("2.5")) / M
    assert after.cost_usd == (1000 * Decimal(1) + 1000 * Decimal(2)) / M


def test_embeddings_price_input_only() -> None:
    price = BOOK.price_facts(facts("openai", "text-embedding-3-small", 8, 0))
    assert price.cost_usd == 8 * Decimal("0.02") / M


def test_rate_rows_resolve_every_rate_and_start_with_the_epoch() -> None:
    rows = rate_rows(BOOK.catalogue)
    assert {row.mode for row in rows} == {"standard", "batch", "flex", "priority"}
    first = {}
    for row in rows:
        first.setdefault((row.provider, row.model, row.mode), row)
        if row.priced:
            assert row.tier_aboves[0] == -1 and list(row.tier_aboves) == sorted(row.tier_aboves)
            for column in ("input", "cache_read", "cache_write_5m", "cache_write_1h"):
                values = getattr(row, column)
                assert len(values) == len(row.tier_aboves) and None not in values, (row.model, column)
    assert all(row.valid_from == EPOCH for row in first.values())
    sonnet = [
        r for r in rows if (r.provider, r.model, r.mode) == ("anthropic", "claude-sonnet-4-6", "standard")
    ]
    assert [r.valid_from for r in sonnet] == [EPOCH, date(2026, 3, 13)]  # the 1M-context tier ended then
    assert sonnet[0].tier_aboves == (-1, 200_000) and sonnet[1].tier_aboves == (-1,)
