"""Pricing: exact Decimal costs, computed here by hand from the providers' published per-MTok rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from halton_meter.pricing import PriceBook, RatesFileError
from halton_meter.testing import factories as f
from halton_meter.usage import RequestInfo, Usage

AT = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
M = Decimal(1_000_000)
BOOK = PriceBook()
CARD = f"catalogue {BOOK.catalogue.version}"

# Published rates, USD per million tokens.
SONNET_45 = {
    "input": Decimal(3),
    "write_5m": Decimal("3.75"),
    "write_1h": Decimal(6),
    "read": Decimal("0.30"),
    "output": Decimal(15),
}
SONNET_LONG = {"input": Decimal(6), "output": Decimal("22.50")}  # whole request, prompt > 200k
GEMINI_25_PRO = {"input": Decimal("1.25"), "read": Decimal("0.125"), "output": Decimal(10)}
GEMINI_25_PRO_LONG = {"input": Decimal("2.50"), "read": Decimal("0.25"), "output": Decimal(15)}


def info(provider: str, model: str | None, **kw) -> RequestInfo:
    return RequestInfo(provider=provider, endpoint="/v1/test", model_requested=model, streamed=False, **kw)


def usage(input_tokens, output_tokens, cache_read=0, write_5m=0, write_1h=0, **kw) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        complete=True,
        **kw,
    )


# -- the Anthropic cache trap, end to end from the wire ---------------------------------------


def test_anthropic_wire_input_excludes_cache_and_the_price_counts_every_bucket_once() -> None:
    body = f.anthropic_message_body(
        input_tokens=1000, output_tokens=500, cache_read=20_000, cache_write_5m=3000, cache_write_1h=2000
    )
    parsed = f.parse_body("anthropic", "/v1/messages", f.anthropic_request(), [body])
    assert parsed.input_tokens == 26_000
    price = BOOK.price(info("anthropic", "claude-sonnet-4-5"), parsed, AT)
    expected = (
        1000 * SONNET_45["input"]
        + 20_000 * SONNET_45["read"]
        + 3000 * SONNET_45["write_5m"]
        + 2000 * SONNET_45["write_1h"]
        + 500 * SONNET_45["output"]
    ) / M
    assert expected == Decimal("0.03975")
    assert price.cost_usd == expected
    assert price.price_card == f"{CARD}:anthropic/claude-sonnet-4-5"
    assert price.unpriced_reason is None


def test_one_hour_cache_writes_cost_more_than_five_minute_writes() -> None:
    five = BOOK.price(info("anthropic", "claude-sonnet-4-5"), usage(10_000, 0, write_5m=10_000), AT)
    hour = BOOK.price(info("anthropic", "claude-sonnet-4-5"), usage(10_000, 0, write_1h=10_000), AT)
    assert five.cost_usd == 10_000 * SONNET_45["write_5m"] / M == Decimal("0.0375")
    assert hour.cost_usd == 10_000 * SONNET_45["write_1h"] / M == Decimal("0.06")
    assert [line.rate for line in hour.lines if line.bucket == "cache_write_1h"] == [SONNET_45["write_1h"]]
    assert "+1h-writes" not in five.price_card


def test_web_search_is_ten_dollars_per_thousand() -> None:
    price = BOOK.price(
        info("anthropic", "claude-sonnet-4-5"), usage(1000, 100, extra_units={"web_search_requests": 3}), AT
    )
    assert price.cost_usd == (1000 * SONNET_45["input"] + 100 * SONNET_45["output"]) / M + 3 * Decimal("0.01")
    assert price.cost_usd == Decimal("0.0345")


# -- long context: the whole request moves to the higher rates --------------------------------


def test_sonnet_45_above_200k_prices_the_whole_request_at_long_context_rates() -> None:
    above = BOOK.price(info("anthropic", "claude-sonnet-4-5-20250929"), usage(250_000, 1000), AT)
    assert (
        above.cost_usd
        == (250_000 * SONNET_LONG["input"] + 1000 * SONNET_LONG["output"]) / M
        == Decimal("1.5225")
    )
    assert "+long-context>200000" in above.price_card
    at_threshold = BOOK.price(info("anthropic", "claude-sonnet-4-5"), usage(200_000, 1000), AT)
    assert at_threshold.cost_usd == (200_000 * SONNET_45["input"] + 1000 * SONNET_45["output"]) / M
    assert at_threshold.cost_usd == Decimal("0.615")


def test_long_context_counts_cached_tokens_toward_the_threshold() -> None:
    # 150k uncached + 60k cache reads = 210k prompt tokens: above the threshold.
    price = BOOK.price(info("anthropic", "claude-sonnet-4-5"), usage(210_000, 0, cache_read=60_000), AT)
    assert price.cost_usd == (150_000 * Decimal(6) + 60_000 * Decimal("0.60")) / M == Decimal("0.936")


def test_sonnet_4_long_context_tier_missing_from_the_data_is_applied() -> None:
    price = BOOK.price(info("anthropic", "claude-sonnet-4-20250514"), usage(300_000, 2000), AT)
    assert price.cost_usd == (300_000 * SONNET_LONG["input"] + 2000 * SONNET_LONG["output"]) / M
    assert price.cost_usd == Decimal("1.845")
    assert price.price_card == f"{CARD}:anthropic/claude-sonnet-4-0+long-context>200000"
    below = BOOK.price(info("anthropic", "claude-sonnet-4-20250514"), usage(100_000, 2000), AT)
    assert below.cost_usd == (100_000 * Decimal(3) + 2000 * Decimal(15)) / M == Decimal("0.33")


def test_gemini_25_pro_above_200k_prompt_tokens() -> None:
    price = BOOK.price(info("gemini", "gemini-2.5-pro"), usage(210_000, 5000, cache_read=10_000), AT)
    expected = (
        200_000 * GEMINI_25_PRO_LONG["input"]
        + 10_000 * GEMINI_25_PRO_LONG["read"]
        + 5000 * GEMINI_25_PRO_LONG["output"]
    ) / M
    assert price.cost_usd == expected == Decimal("0.5775")
    below = BOOK.price(info("gemini", "gemini-2.5-pro"), usage(100_000, 5000), AT)
    assert below.cost_usd == (100_000 * GEMINI_25_PRO["input"] + 5000 * GEMINI_25_PRO["output"]) / M
    assert below.cost_usd == Decimal("0.175")


def test_gemini_thoughts_are_priced_as_output() -> None:
    body = f.json_body(f.gemini_response(prompt=1000, candidates=200, thoughts=800))
    parsed = f.parse_body(
        "gemini", "/v1beta/models/gemini-2.5-pro:generateContent", f.gemini_request(), [body]
    )
    price = BOOK.price(info("gemini", "gemini-2.5-pro"), parsed, AT)
    assert price.cost_usd == (1000 * GEMINI_25_PRO["input"] + 1000 * GEMINI_25_PRO["output"]) / M
    assert price.cost_usd == Decimal("0.01125")


# -- tiers: batch, flex, priority -------------------------------------------------------------


def test_batch_api_is_half_price() -> None:
    price = BOOK.price(info("anthropic", "claude-sonnet-4-5", batch=True), usage(10_000, 2000), AT)
    assert (
        price.cost_usd
        == (10_000 * SONNET_45["input"] + 2000 * SONNET_45["output"]) / M / 2
        == Decimal("0.03")
    )
    assert price.price_card == f"{CARD}:anthropic/claude-sonnet-4-5+batch"


def test_batch_tier_reported_in_the_usage_is_half_price_too() -> None:
    price = BOOK.price(info("anthropic", "claude-sonnet-4-5"), usage(10_000, 2000, service_tier="batch"), AT)
    assert price.cost_usd == Decimal("0.03")


def test_openai_flex_is_priced_at_batch_rates() -> None:
    # o3 since 2025-06-10: $2 input, $0.50 cached, $8 output; flex halves them.
    price = BOOK.price(info("openai", "o3", service_tier="flex"), usage(10_000, 4000, cache_read=2000), AT)
    assert price.cost_usd == (8000 * Decimal(2) + 2000 * Decimal("0.50") + 4000 * Decimal(8)) / M / 2
    assert price.cost_usd == Decimal("0.0245")
    assert price.price_card == f"{CARD}:openai/o3+flex"


def test_openai_priority_uses_the_published_priority_rates() -> None:
    # gpt-5 priority: $2.50 input, $0.25 cached, $20 output (standard: $1.25 / $0.125 / $10).
    tiered = usage(10_000, 1000, cache_read=4000, service_tier="priority")
    price = BOOK.price(info("openai", "gpt-5", service_tier="priority"), tiered, AT)
    assert price.cost_usd == (6000 * Decimal("2.50") + 4000 * Decimal("0.25") + 1000 * Decimal(20)) / M
    assert price.cost_usd == Decimal("0.036")
    assert price.price_card.endswith("+priority")


def test_served_tier_wins_over_the_requested_one() -> None:
    # Asked for priority, served at default: standard gpt-5 rates.
    served_default = usage(10_000, 1000, cache_read=4000, service_tier="default")
    price = BOOK.price(info("openai", "gpt-5", service_tier="priority"), served_default, AT)
    assert price.cost_usd == (6000 * Decimal("1.25") + 4000 * Decimal("0.125") + 1000 * Decimal(10)) / M


def test_priority_without_known_rates_is_unpriced_not_underpriced() -> None:
    price = BOOK.price(info("openai", "gpt-5-nano", service_tier="priority"), usage(1000, 100), AT)
    assert price.cost_usd is None
    assert "priority" in price.unpriced_reason


# -- provider-billed, unknowns ----------------------------------------------------------------


def test_xai_billed_cost_is_the_cost() -> None:
    parsed = f.parse_body(
        "xai",
        "/v1/chat/completions",
        f.openai_chat_request(model="grok-4"),
        [f.json_body(f.xai_chat_completion(cost_in_usd_ticks=37756000))],
    )
    price = BOOK.price(info("xai", "grok-4"), parsed, AT)
    assert price.cost_usd == Decimal("0.0037756")
    assert price.price_card == "provider-billed:xai/grok-4-0709 (usage.cost_in_usd_ticks)"


def test_xai_without_ticks_is_priced_from_rates() -> None:
    # grok-4: $3 input, $0.75 cached, $15 output.
    price = BOOK.price(info("xai", "grok-4"), usage(1000, 100, cache_read=400), AT)
    assert (
        price.cost_usd
        == (600 * Decimal(3) + 400 * Decimal("0.75") + 100 * Decimal(15)) / M
        == Decimal("0.0036")
    )


def test_unknown_model_is_unpriced_never_zero() -> None:
    price = BOOK.price(info("openai", "gpt-imaginary-9"), usage(1000, 1000), AT)
    assert price.cost_usd is None
    assert price.price_card is None
    assert "no price for openai/gpt-imaginary-9" in price.unpriced_reason


def test_unknown_tokens_are_unpriced_with_a_reason() -> None:
    streamed = RequestInfo("openai", "/v1/chat/completions", "gpt-4o", streamed=True)
    price = BOOK.price(streamed, Usage(model_served="gpt-4o-2024-08-06", complete=True), AT)
    assert price.cost_usd is None
    assert "include_usage" in price.unpriced_reason
    cut = BOOK.price(info("anthropic", "claude-sonnet-4-5"), Usage(input_tokens=10, complete=False), AT)
    assert (cut.cost_usd, cut.unpriced_reason) == (
        None,
        "token counts unknown: the response ended before its usage was seen",
    )
    batch = BOOK.price(info("openai", "gpt-4o", batch=True), Usage(complete=True), AT)
    assert "batch" in batch.unpriced_reason


def test_no_model_name_is_unpriced() -> None:
    price = BOOK.price(info("openai", None), usage(10, 10), AT)
    assert (price.cost_usd, price.unpriced_reason) == (None, "no model name in the request or the response")


def test_served_model_is_tried_before_the_requested_alias() -> None:
    price = BOOK.price(
        info("openai", "my-azure-deployment"), usage(1000, 1000, model_served="gpt-4o-2024-08-06"), AT
    )
    assert price.cost_usd == (1000 * Decimal("2.50") + 1000 * Decimal(10)) / M == Decimal("0.0125")


def test_embeddings() -> None:
    price = BOOK.price(info("openai", "text-embedding-3-small"), usage(8, 0), AT)
    assert price.cost_usd == 8 * Decimal("0.02") / M == Decimal("0.00000016")


def test_price_changes_follow_the_request_date() -> None:
    # o3 was $10 / $40 before 2025-06-10 and $2 / $8 from then on.
    before = BOOK.price(info("openai", "o3"), usage(1000, 1000), datetime(2025, 6, 1, tzinfo=UTC))
    after = BOOK.price(info("openai", "o3"), usage(1000, 1000), datetime(2025, 6, 10, tzinfo=UTC))
    assert before.cost_usd == (1000 * Decimal(10) + 1000 * Decimal(40)) / M == Decimal("0.05")
    assert after.cost_usd == (1000 * Decimal(2) + 1000 * Decimal(8)) / M == Decimal("0.01")


def test_costs_are_decimal_rounded_half_up_to_nine_places(tmp_path: Path) -> None:
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"format": 1, "models": {"openai/tiny": {"input": "0.0015", "output": "0"}}}))
    price = PriceBook(rates).price(info("openai", "tiny"), usage(1, 0), AT)
    assert price.cost_usd == Decimal("0.000000002")  # 0.0000000015 rounded half up
    assert isinstance(price.cost_usd, Decimal)


def test_version_names_the_price_data() -> None:
    assert BOOK.version == f"catalogue {BOOK.catalogue.version}"
    assert BOOK.catalogue.version.startswith("20")


# -- the overrides file -----------------------------------------------------------------------


def write_rates(tmp_path: Path, models: dict) -> Path:
    path = tmp_path / "rates.json"
    path.write_text(json.dumps({"format": 1, "models": models}))
    return path


def test_override_prices_a_model_the_catalogue_lacks(tmp_path: Path) -> None:
    path = write_rates(tmp_path, {"openai/gpt-x*": {"input": 1, "output": "2", "cache_read": "0.1"}})
    book = PriceBook(path)
    price = book.price(
        info("openai", "gpt-x-2026-01-01"), usage(1_000_000, 1_000_000, cache_read=500_000), AT
    )
    assert price.cost_usd == (500_000 * Decimal(1) + 500_000 * Decimal("0.1") + 1_000_000 * Decimal(2)) / M
    assert price.cost_usd == Decimal("2.55")
    digest = book.version.split("overrides@")[1]
    assert len(digest) == 8
    assert price.price_card == f"overrides@{digest}:openai/gpt-x*"


def test_override_wins_over_the_catalogue_for_negotiated_rates(tmp_path: Path) -> None:
    path = write_rates(tmp_path, {"anthropic/claude-sonnet-4-5": {"input": "2.70", "output": "13.50"}})
    price = PriceBook(path).price(
        info("anthropic", "claude-sonnet-4-5"),
        usage(1000, 1000, model_served="claude-sonnet-4-5-20250929"),
        AT,
    )
    assert price.cost_usd == (1000 * Decimal("2.70") + 1000 * Decimal("13.50")) / M == Decimal("0.0162")


def test_override_long_context_and_batch_discount(tmp_path: Path) -> None:
    path = write_rates(
        tmp_path,
        {
            "gemini/gemini-custom": {
                "input": 1,
                "output": 10,
                "batch_discount": "0.4",
                "long_context": {"threshold": 100_000, "input": 4, "output": 20},
            }
        },
    )
    book = PriceBook(path)
    long = book.price(info("gemini", "gemini-custom"), usage(150_000, 1000), AT)
    assert long.cost_usd == (150_000 * Decimal(4) + 1000 * Decimal(20)) / M == Decimal("0.62")
    assert long.price_card.endswith("+long-context>100000")
    batch = book.price(info("gemini", "gemini-custom", batch=True), usage(10_000, 1000), AT)
    assert (
        batch.cost_usd == (10_000 * Decimal(1) + 1000 * Decimal(10)) / M * Decimal("0.6") == Decimal("0.012")
    )
    assert batch.price_card.endswith("+batch")


def test_missing_overrides_file_means_no_overrides(tmp_path: Path) -> None:
    book = PriceBook(tmp_path / "absent.json")
    assert book.version == BOOK.version


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('{"format": 2, "models": {}}', '"format" must be 1'),
        (
            '{"format": 1, "models": {"openai/x": {"input": 1, "output": 2, "cache_write": 3}}}',
            'unknown key models."openai/x".cache_write',
        ),
        ('{"format": 1, "models": {"openai/x": {"input": -1, "output": 2}}}', 'models."openai/x".input'),
        ('{"format": 1, "models": {"openai/x": {"input": "abc", "output": 2}}}', 'models."openai/x".input'),
        ('{"format": 1, "models": {"openai/x": {"input": 1}}}', '"output" is required'),
        ('{"format": 1, "models": {"mistral/x": {"input": 1, "output": 2}}}', 'models."mistral/x"'),
        (
            '{"format": 1, "models": {"openai/x": {"input": 1, "output": 2, "long_context": {"input": 2, "output": 3}}}}',
            'models."openai/x".long_context.threshold',
        ),
        (
            '{"format": 1, "models": {"openai/x": {"input": 1, "output": 2, "batch_discount": 2}}}',
            'models."openai/x".batch_discount',
        ),
        (
            '{"format": 1, "models": {"openai/x": {"input": 1, "output": 2, "priority": {"inptu": 1}}}}',
            'unknown key models."openai/x".priority.inptu',
        ),
    ],
)
def test_invalid_overrides_name_the_bad_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "rates.json"
    path.write_text(content)
    with pytest.raises(RatesFileError) as raised:
        PriceBook(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_amounts_never_pass_through_float(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    path.write_text('{"format": 1, "models": {"openai/y": {"input": 0.1, "output": "0.2"}}}')
    price = PriceBook(path).price(info("openai", "y"), usage(1_000_000, 1_000_000), AT)
    # Decimal(0.1) from a float would be 0.1000000000000000055511151231257827...
    assert [str(line.rate) for line in price.lines if line.bucket in ("input", "output")] == ["0.1", "0.2"]


def test_pricing_never_raises() -> None:
    weird = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=50, complete=True)
    price = BOOK.price(info("openai", "gpt-4o"), weird, AT)
    assert price.cost_usd is None
    assert "exceed" in price.unpriced_reason
