"""What a call costs, end to end: official SDKs -> the running meter (both modes) -> fake providers.

``test_proxy.py`` covers the ways in and what goes wrong on the wire; this module covers the price of
each kind of call the catalogue prices differently: 1-hour cache writes, both sides of every long-context
threshold, reasoning tokens, flex and priority (with and without rates of their own), US-only inference,
the models new in the catalogue, a stream that fails mid-way, provider errors and unknown models. The
fakes report the token counts a test asks for (``x-fake-usage``, see ``fake_providers``).

Expected costs are worked out here from the catalogue's published per-million-token rates, written as
literals next to where they come from (``catalogue/rates.json``, in force on every day since 2026-10-14,
the latest start date among the rates used here), never by calling the pricing module: a pricing
regression shows up as a number that no longer matches.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors

from halton_meter.testing.sdk_clients import (
    MODES,
    anthropic_client,
    gemini_client,
    openai_client,
    xai_client,
)

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
BOTH_MODES = pytest.mark.parametrize("mode", MODES)
PROMPT = [{"role": "user", "content": "hi"}]


def usd(*lines: tuple[int, str]) -> Decimal:
    """The cost of (tokens, USD per million tokens) lines."""
    return sum((tokens * Decimal(rate) for tokens, rate in lines), Decimal(0)) / 10**6


def nanos(cost: Decimal) -> int:
    scaled = cost * 10**9
    assert scaled == scaled.to_integral_value(), f"{cost} is not a whole number of nano-dollars"
    return int(scaled)


def card(row: dict[str, Any]) -> str:
    """The price card without the catalogue version: ``provider/model`` and its notes."""
    label, _, rest = (row["price_card"] or "").partition(":")
    assert label.startswith("catalogue "), row["price_card"]
    return rest


def assert_priced(
    row: dict[str, Any], tokens: dict[str, int | None], cost: Decimal, price_card: str, **more: Any
) -> None:
    for name, value in tokens.items():
        assert row[name] == value, (name, row[name], value)
    assert row["unpriced_reason"] is None, row["unpriced_reason"]
    assert row["cost_nusd"] == nanos(cost), (row["cost_nusd"], nanos(cost))
    assert card(row) == price_card
    for name, value in more.items():
        assert row[name] == value, (name, row[name], value)


def assert_unpriced(row: dict[str, Any], reason: str) -> None:
    assert row["cost_nusd"] is None and row["price_card"] is None
    assert row["unpriced_reason"] == reason, row["unpriced_reason"]


# -- calls ----------------------------------------------------------------------------------------------


def anthropic_call(
    client: anthropic.Anthropic,
    model: str,
    usage: dict[str, Any],
    streamed: bool,
    headers: dict[str, str] | None = None,
) -> Any:
    """One Messages call whose reply reports ``usage`` (Anthropic's wire names); the SDK's message."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": PROMPT,
        "extra_headers": {"x-fake-usage": json.dumps(usage), **(headers or {})},
    }
    if streamed:
        with client.messages.stream(**params) as stream:
            return stream.get_final_message()
    return client.messages.create(**params)


def openai_call(
    client: openai.OpenAI,
    model: str,
    usage: dict[str, Any],
    streamed: bool,
    endpoint: str = "chat",
    **kw: Any,
) -> Any:
    """One Chat Completions (or Responses) call whose reply reports ``usage``; its usage-carrying object."""
    headers = {"x-fake-usage": json.dumps(usage)}
    if endpoint == "responses":
        if streamed:
            events = list(
                client.responses.create(model=model, input="hi", stream=True, extra_headers=headers, **kw)
            )
            assert events[-1].type == "response.completed"
            return events[-1].response
        return client.responses.create(model=model, input="hi", extra_headers=headers, **kw)
    if streamed:
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=PROMPT,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
                **kw,
            )
        )
        return chunks[-1]
    return client.chat.completions.create(model=model, messages=PROMPT, extra_headers=headers, **kw)


def gemini_call(mode: str, meter: Any, ca: Any, model: str, usage: dict[str, Any], streamed: bool) -> Any:
    """One generateContent (or streamGenerateContent) call whose reply reports ``usage``; the last chunk."""
    client = gemini_client(mode, meter, ca, {"x-fake-usage": json.dumps(usage)})
    if streamed:
        return list(client.models.generate_content_stream(model=model, contents="hi"))[-1]
    return client.models.generate_content(model=model, contents="hi")


# -- Anthropic: 1-hour cache writes ------------------------------------------------------------------------

# 1,000 uncached input, 2,000 cache read, 300 5-minute and 400 1-hour cache writes, 500 output.
CACHED = {
    "input_tokens": 1000,
    "cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
    "output_tokens": 500,
}
CACHED_ROW = {
    "input_tokens": 3700,
    "cache_read_tokens": 2000,
    "cache_write_tokens": 300,
    "cache_write_1h_tokens": 400,
    "output_tokens": 500,
}
# claude-sonnet-4-5 and claude-sonnet-4-6: $3 input, $0.30 cache read, $3.75 5m write, $6 1h write, $15 output.
SONNET_CACHED_COST = usd((1000, "3"), (2000, "0.30"), (300, "3.75"), (400, "6"), (500, "15"))


@BOTH_MODES
@STREAMED
def test_anthropic_one_hour_cache_writes_at_the_one_hour_rate(mode, streamed, meter, meter_ca, new_rows):
    message = anthropic_call(anthropic_client(mode, meter, meter_ca), "claude-sonnet-4-5", CACHED, streamed)
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 400
    (row,) = new_rows()
    assert_priced(row, CACHED_ROW, SONNET_CACHED_COST, "anthropic/claude-sonnet-4-5", streamed=int(streamed))
    assert row["complete"] == 1 and row["region"] is None


# -- long context: both sides of the threshold ---------------------------------------------------------------


def sonnet_long(uncached: int) -> dict[str, Any]:
    """A claude-sonnet-4-5 prompt of ``uncached`` + 40,000 cache read + 6,000 5m + 4,000 1h written tokens."""
    return {
        "input_tokens": uncached,
        "cache_read_input_tokens": 40000,
        "cache_creation": {"ephemeral_5m_input_tokens": 6000, "ephemeral_1h_input_tokens": 4000},
        "output_tokens": 1000,
    }


LONG_CONTEXT_ANTHROPIC = [
    # 200,000 prompt tokens (cache included) is not above the 200k threshold: base rates.
    pytest.param(
        150000,
        200000,
        usd((150000, "3"), (40000, "0.30"), (6000, "3.75"), (4000, "6"), (1000, "15")),
        "anthropic/claude-sonnet-4-5",
        id="at-200000",
    ),
    # 200,001 is above it: the whole request at $6 input, $0.60 read, $7.50 5m, $12 1h, $22.50 output.
    pytest.param(
        150001,
        200001,
        usd((150001, "6"), (40000, "0.60"), (6000, "7.50"), (4000, "12"), (1000, "22.50")),
        "anthropic/claude-sonnet-4-5+long-context>200000",
        id="at-200001",
    ),
]


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(("uncached", "prompt", "cost", "price_card"), LONG_CONTEXT_ANTHROPIC)
def test_anthropic_long_context_threshold(
    mode, streamed, uncached, prompt, cost, price_card, meter, meter_ca, new_rows
):
    anthropic_call(
        anthropic_client(mode, meter, meter_ca), "claude-sonnet-4-5", sonnet_long(uncached), streamed
    )
    (row,) = new_rows()
    tokens = {"input_tokens": prompt, "cache_read_tokens": 40000, "cache_write_tokens": 6000}
    assert_priced(row, {**tokens, "cache_write_1h_tokens": 4000, "output_tokens": 1000}, cost, price_card)


LONG_CONTEXT_GEMINI = [
    # gemini-2.5-pro up to 200k prompt tokens: $1.25 input, $0.125 cached, $10 output (thinking included).
    pytest.param(
        200000, usd((150000, "1.25"), (50000, "0.125"), (1000, "10")), "gemini/gemini-2.5-pro", id="at-200000"
    ),
    # Above 200k: $2.50 input, $0.25 cached, $15 output for the whole request.
    pytest.param(
        200001,
        usd((150001, "2.50"), (50000, "0.25"), (1000, "15")),
        "gemini/gemini-2.5-pro+long-context>200000",
        id="at-200001",
    ),
]


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(("prompt", "cost", "price_card"), LONG_CONTEXT_GEMINI)
def test_gemini_long_context_threshold(mode, streamed, prompt, cost, price_card, meter, meter_ca, new_rows):
    usage = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": 50000,
        "candidatesTokenCount": 800,
        "thoughtsTokenCount": 200,
    }
    last = gemini_call(mode, meter, meter_ca, "gemini-2.5-pro", usage, streamed)
    assert last.usage_metadata.thoughts_token_count == 200
    (row,) = new_rows()
    tokens = {
        "input_tokens": prompt,
        "cache_read_tokens": 50000,
        "output_tokens": 1000,
        "reasoning_tokens": 200,
    }
    assert_priced(
        row, {**tokens, "cache_write_tokens": None, "cache_write_1h_tokens": None}, cost, price_card
    )


LONG_CONTEXT_OPENAI = [
    # gpt-5.5 up to 272k prompt tokens: $5 input, $0.50 cached, $30 output.
    pytest.param(
        272000, None, usd((200000, "5"), (72000, "0.50"), (1000, "30")), "openai/gpt-5.5", id="at-272000"
    ),
    # Above 272k: $10 input, $1 cached, $45 output for the whole request.
    pytest.param(
        272001,
        None,
        usd((200001, "10"), (72000, "1"), (1000, "45")),
        "openai/gpt-5.5+long-context>272000",
        id="at-272001",
    ),
    # Flex has a tier of its own above 272k (since 2026-10-12): $5 input, $0.50 cached, $22.50 output.
    pytest.param(
        272001,
        "flex",
        usd((200001, "5"), (72000, "0.50"), (1000, "22.50")),
        "openai/gpt-5.5+flex+long-context>272000",
        id="flex-at-272001",
    ),
]


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(("prompt", "tier", "cost", "price_card"), LONG_CONTEXT_OPENAI)
def test_openai_long_context_threshold(
    mode, streamed, prompt, tier, cost, price_card, meter, meter_ca, new_rows
):
    usage = {"prompt_tokens": prompt, "cached_tokens": 72000, "completion_tokens": 1000}
    kw = {"service_tier": tier} if tier else {}
    openai_call(openai_client(mode, meter, meter_ca), "gpt-5.5", usage, streamed, **kw)
    (row,) = new_rows()
    tokens = {
        "input_tokens": prompt,
        "cache_read_tokens": 72000,
        "output_tokens": 1000,
        "reasoning_tokens": 0,
    }
    assert_priced(row, tokens, cost, price_card, service_tier=tier or "default")


LONG_CONTEXT_XAI = [
    # grok-4.5: $2 input, $0.30 cached, $6 output up to 199,999 prompt tokens; $4, $0.60, $12 above.
    pytest.param(199999, usd((199999, "2"), (1000, "6")), "xai/grok-4.5", id="at-199999"),
    pytest.param(
        200000, usd((200000, "4"), (1000, "12")), "xai/grok-4.5+long-context>199999", id="at-200000"
    ),
]


@BOTH_MODES
@pytest.mark.parametrize(("prompt", "cost", "price_card"), LONG_CONTEXT_XAI)
def test_xai_long_context_threshold_without_a_stated_bill(
    mode, prompt, cost, price_card, meter, meter_ca, new_rows
):
    usage = {"prompt_tokens": prompt, "completion_tokens": 1000, "cost_in_usd_ticks": None}
    openai_call(xai_client(mode, meter, meter_ca), "grok-4.5", usage, streamed=False)
    (row,) = new_rows()
    assert_priced(
        row, {"input_tokens": prompt, "output_tokens": 1000}, cost, price_card, billed_cost_nusd=None
    )


# -- flex and priority ---------------------------------------------------------------------------------

# 10,000 prompt tokens of which 4,000 cached; 3,000 completion tokens of which 1,000 reasoning.
OPENAI_USAGE = {
    "prompt_tokens": 10000,
    "cached_tokens": 4000,
    "completion_tokens": 3000,
    "reasoning_tokens": 1000,
}
OPENAI_ROW = {
    "input_tokens": 10000,
    "cache_read_tokens": 4000,
    "output_tokens": 3000,
    "reasoning_tokens": 1000,
}
# The same call at xAI, which reports reasoning beside the completion tokens (total = prompt + completion +
# reasoning), and without a stated bill (cost_in_usd_ticks), so that the catalogue prices it.
XAI_USAGE = {**OPENAI_USAGE, "completion_tokens": 2000, "cost_in_usd_ticks": None}

TIERS = [
    # gpt-5 standard: $1.25 input, $0.125 cached, $10 output.
    pytest.param("gpt-5", None, usd((6000, "1.25"), (4000, "0.125"), (3000, "10")), "", id="gpt-5-standard"),
    # gpt-5 has flex rates of its own (since 2026-10-12): $0.625, $0.0625, $5.
    pytest.param(
        "gpt-5", "flex", usd((6000, "0.625"), (4000, "0.0625"), (3000, "5")), "+flex", id="gpt-5-flex"
    ),
    # gpt-5 priority (since 2026-10-12): $2.50, $0.25, $20.
    pytest.param(
        "gpt-5",
        "priority",
        usd((6000, "2.50"), (4000, "0.25"), (3000, "20")),
        "+priority",
        id="gpt-5-priority",
    ),
    # gpt-4o has no flex price: flex is "priced at Batch API rates", its batch entry (since 2026-10-14)
    # $1.25 input, $5 output; the batch entry states no cached rate, so cached input stays at $1.25.
    pytest.param(
        "gpt-4o",
        "flex",
        usd((6000, "1.25"), (4000, "1.25"), (3000, "5")),
        "+flex+flex@batch-rates",
        id="gpt-4o-flex-at-batch-rates",
    ),
    # gpt-4o priority (since 2026-10-12): $4.25, $2.125, $17.
    pytest.param(
        "gpt-4o",
        "priority",
        usd((6000, "4.25"), (4000, "2.125"), (3000, "17")),
        "+priority",
        id="gpt-4o-priority",
    ),
    # gpt-5.3 has neither flex nor batch rates: OpenAI's published batch discount, half of $1.75, $0.175, $14.
    pytest.param(
        "gpt-5.3",
        "flex",
        usd((6000, "0.875"), (4000, "0.0875"), (3000, "7")),
        "+flex+flex@batch-rates+batch@50%-published",
        id="gpt-5.3-flex-at-half-price",
    ),
]


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(("model", "tier", "cost", "notes"), TIERS)
def test_openai_flex_and_priority(mode, streamed, model, tier, cost, notes, meter, meter_ca, new_rows):
    kw = {"service_tier": tier} if tier else {}
    answer = openai_call(openai_client(mode, meter, meter_ca), model, OPENAI_USAGE, streamed, **kw)
    assert answer.service_tier == (tier or "default")  # the tier that served the call
    (row,) = new_rows()
    assert_priced(
        row,
        OPENAI_ROW,
        cost,
        f"openai/{model}{notes}",
        service_tier=tier or "default",
        service_tier_requested=tier,
        streamed=int(streamed),
    )


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(
    ("tier", "cost"),
    [
        ("flex", usd((6000, "0.625"), (4000, "0.0625"), (3000, "5"))),
        ("priority", usd((6000, "2.50"), (4000, "0.25"), (3000, "20"))),
    ],
)
def test_openai_responses_api_flex_and_priority(mode, streamed, tier, cost, meter, meter_ca, new_rows):
    response = openai_call(
        openai_client(mode, meter, meter_ca), "gpt-5", OPENAI_USAGE, streamed, "responses", service_tier=tier
    )
    assert response.service_tier == tier and response.usage.output_tokens_details.reasoning_tokens == 1000
    (row,) = new_rows()
    assert_priced(row, OPENAI_ROW, cost, f"openai/gpt-5+{tier}", service_tier=tier, endpoint="/v1/responses")


@BOTH_MODES
@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "gpt-5.3"), ("xai", "grok-4.5")], ids=["openai", "xai"]
)
def test_priority_without_a_priority_price_is_unpriced_not_standard(
    mode, provider, model, meter, meter_ca, new_rows
):
    client = (openai_client if provider == "openai" else xai_client)(mode, meter, meter_ca)
    usage = XAI_USAGE if provider == "xai" else OPENAI_USAGE
    openai_call(client, model, usage, streamed=False, service_tier="priority")
    (row,) = new_rows()
    assert row["input_tokens"] == 10000 and row["output_tokens"] == 3000 and row["service_tier"] == "priority"
    # Never at standard rates: the catalogue has no priority price for the model, so no price at all.
    assert row["unpriced_reason"].startswith(f"priority rates for {provider}/{model} on ")
    assert "are not known to catalogue " in row["unpriced_reason"]
    assert row["cost_nusd"] is None and row["price_card"] is None


# -- US-only inference -----------------------------------------------------------------------------------

# claude-sonnet-4-6 served in the US: every token kind x1.1; the 3 web searches ($10 per 1,000) are not.
SEARCHED = {**CACHED, "server_tool_use": {"web_search_requests": 3}}
SEARCH_FEES = usd((3, "10000"))  # 3 searches at $10 per 1,000 = $0.01 each


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize(
    ("geo", "cost", "notes"),
    [
        ("us", SONNET_CACHED_COST * Decimal("1.1") + SEARCH_FEES, "+region:usx1.1+web-search"),
        ("global", SONNET_CACHED_COST + SEARCH_FEES, "+web-search"),
    ],
)
def test_anthropic_us_only_inference(mode, streamed, geo, cost, notes, meter, meter_ca, new_rows):
    message = anthropic_call(
        anthropic_client(mode, meter, meter_ca), "claude-sonnet-4-6", SEARCHED, streamed, {"x-fake-geo": geo}
    )
    assert message.usage.server_tool_use.web_search_requests == 3
    (row,) = new_rows()
    assert_priced(
        row, CACHED_ROW, cost, f"anthropic/claude-sonnet-4-6{notes}", region=geo, web_search_requests=3
    )


# -- models new in the catalogue --------------------------------------------------------------------------


@BOTH_MODES
@STREAMED
def test_new_anthropic_model_claude_sonnet_5(mode, streamed, meter, meter_ca, new_rows):
    anthropic_call(anthropic_client(mode, meter, meter_ca), "claude-sonnet-5", CACHED, streamed)
    (row,) = new_rows()
    # claude-sonnet-5: $2 input, $0.20 cache read, $2.50 5m write, $4 1h write, $10 output.
    cost = usd((1000, "2"), (2000, "0.20"), (300, "2.50"), (400, "4"), (500, "10"))
    assert_priced(row, CACHED_ROW, cost, "anthropic/claude-sonnet-5", model_served="claude-sonnet-5")


@BOTH_MODES
@STREAMED
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_new_openai_model_gpt_6_sol(mode, streamed, endpoint, meter, meter_ca, new_rows):
    openai_call(openai_client(mode, meter, meter_ca), "gpt-6-sol", OPENAI_USAGE, streamed, endpoint)
    (row,) = new_rows()
    # gpt-6-sol up to 272k prompt tokens: $2 input, $0.20 cached, $10 output (reasoning included).
    cost = usd((6000, "2"), (4000, "0.20"), (3000, "10"))
    assert_priced(row, OPENAI_ROW, cost, "openai/gpt-6-sol", model_served="gpt-6-sol")


@BOTH_MODES
@STREAMED
def test_new_gemini_model_gemini_3_5_flash(mode, streamed, meter, meter_ca, new_rows):
    usage = {
        "promptTokenCount": 10000,
        "cachedContentTokenCount": 4000,
        "candidatesTokenCount": 2000,
        "thoughtsTokenCount": 1000,
    }
    gemini_call(mode, meter, meter_ca, "gemini-3.5-flash", usage, streamed)
    (row,) = new_rows()
    # gemini-3.5-flash: $1.50 input, $0.15 cached, $9 output (thoughts billed as output).
    cost = usd((6000, "1.50"), (4000, "0.15"), (3000, "9"))
    assert_priced(row, OPENAI_ROW, cost, "gemini/gemini-3.5-flash", model_served="gemini-3.5-flash")


@BOTH_MODES
@STREAMED
def test_new_xai_model_grok_4_5(mode, streamed, meter, meter_ca, new_rows):
    # Priced from the catalogue (no stated bill); output = 2,000 completion + 1,000 reasoning beside them.
    openai_call(xai_client(mode, meter, meter_ca), "grok-4.5", XAI_USAGE, streamed)
    (row,) = new_rows()
    # grok-4.5 up to 199,999 prompt tokens: $2 input, $0.30 cached, $6 output.
    cost = usd((6000, "2"), (4000, "0.30"), (3000, "6"))
    assert_priced(row, OPENAI_ROW, cost, "xai/grok-4.5", billed_cost_nusd=None, streamed=int(streamed))


# -- a stream that fails mid-way -----------------------------------------------------------------------------


@BOTH_MODES
def test_anthropic_mid_stream_error(mode, meter, meter_ca, new_rows):
    client = anthropic_client(mode, meter, meter_ca)
    with (
        pytest.raises(anthropic.APIStatusError, match=r"overloaded_error|Overloaded"),
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=PROMPT,
            extra_headers={"x-fake-scenario": "mid_stream_error"},
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    (row,) = new_rows()
    # What message_start said is kept: 120 uncached + 30 read + 10 written input, and its placeholder
    # output count of 1; the message never ended.
    tokens = {"input_tokens": 160, "cache_read_tokens": 30, "cache_write_tokens": 10, "output_tokens": 1}
    assert row["status_code"] == 200 and row["streamed"] == 1 and row["complete"] == 0
    # pricing.py prices what it saw when both counts are known, complete or not: 120 x $3 + 30 x $0.30
    # + 10 x $3.75 + 1 x $15 (see the report: the output of a failed stream is a lower bound).
    cost = usd((120, "3"), (30, "0.30"), (10, "3.75"), (1, "15"))
    assert_priced(row, tokens, cost, "anthropic/claude-sonnet-4-5+incomplete-usage")


@BOTH_MODES
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_openai_mid_stream_error(mode, endpoint, meter, meter_ca, new_rows):
    client = openai_client(mode, meter, meter_ca)
    headers = {"x-fake-scenario": "mid_stream_error"}
    if endpoint == "chat":
        # A chunk with an error object: the SDK raises.
        with pytest.raises(openai.APIError, match="The server had an error"):
            list(
                client.chat.completions.create(
                    model="gpt-4o",
                    messages=PROMPT,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
            )
    else:
        # The Responses API's error event is an event like the others: the SDK hands it over, last.
        events = list(
            client.responses.create(model="gpt-4.1", input="hi", stream=True, extra_headers=headers)
        )
        assert events[-1].type == "error" and events[-1].code == "server_error"
    (row,) = new_rows()
    assert row["status_code"] == 200 and row["streamed"] == 1 and row["complete"] == 0
    # The usage comes last in an OpenAI stream: none was seen, so nothing is known, and nothing is priced.
    assert row["input_tokens"] is None and row["output_tokens"] is None
    assert_unpriced(row, "token counts unknown: the response ended before its usage was seen")


# -- provider errors: a known $0 -------------------------------------------------------------------------


@BOTH_MODES
@pytest.mark.parametrize(
    ("provider", "status"),
    [("anthropic", 529), ("anthropic", 429), ("openai", 429), ("openai", 500), ("gemini", 429), ("xai", 500)],
)
def test_provider_errors_are_a_known_zero(mode, provider, status, meter, meter_ca, new_rows):
    headers = {"x-fake-scenario": str(status)}
    if provider == "anthropic":
        model = "claude-sonnet-4-5"
        with pytest.raises(anthropic.APIStatusError) as raised:
            anthropic_client(mode, meter, meter_ca).messages.create(
                model=model, max_tokens=8, messages=PROMPT, extra_headers=headers
            )
        assert raised.value.status_code == status
    elif provider == "gemini":
        model = "gemini-2.5-pro"
        with pytest.raises(genai_errors.APIError) as raised:
            gemini_client(mode, meter, meter_ca, headers).models.generate_content(model=model, contents="hi")
        assert raised.value.code == status
    else:
        model = "gpt-4o" if provider == "openai" else "grok-4.5"
        client = (openai_client if provider == "openai" else xai_client)(mode, meter, meter_ca)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model=model, messages=PROMPT, extra_headers=headers)
        assert raised.value.status_code == status
    (row,) = new_rows()
    assert row["status_code"] == status and row["model_requested"] == model
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        assert row[name] is None, name
    assert row["cost_nusd"] == 0 and row["unpriced_reason"] is None
    assert row["price_card"] == f"provider-error:{provider}/{model} HTTP {status}, not billed"


# -- unknown models: unpriced, never $0 ------------------------------------------------------------------


@BOTH_MODES
@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini", "xai"])
def test_unknown_model_is_unpriced_with_its_tokens(mode, provider, meter, meter_ca, new_rows):
    if provider == "anthropic":
        model = "claude-imaginary-9"
        anthropic_call(anthropic_client(mode, meter, meter_ca), model, CACHED, streamed=False)
        tokens = CACHED_ROW
    elif provider == "gemini":
        model = "gemini-imaginary-9"
        usage = {
            "promptTokenCount": 10000,
            "cachedContentTokenCount": 4000,
            "candidatesTokenCount": 2000,
            "thoughtsTokenCount": 1000,
        }
        gemini_call(mode, meter, meter_ca, model, usage, streamed=False)
        tokens = OPENAI_ROW
    else:
        model = "gpt-imaginary-9" if provider == "openai" else "grok-imaginary-9"
        client = (openai_client if provider == "openai" else xai_client)(mode, meter, meter_ca)
        usage = XAI_USAGE if provider == "xai" else OPENAI_USAGE
        openai_call(client, model, usage, streamed=False)
        tokens = OPENAI_ROW
    (row,) = new_rows()
    for name, value in tokens.items():
        assert row[name] == value, name
    assert row["cost_nusd"] is None and row["price_card"] is None
    assert row["unpriced_reason"].startswith(f"no price for {provider}/{model} in catalogue ")


def test_a_bad_usage_knob_is_refused_by_name(meter, new_rows):
    client = openai_client("base_url", meter, None)
    with pytest.raises(openai.BadRequestError, match="unknown key prompt_tokenz"):
        client.chat.completions.create(
            model="gpt-4o", messages=PROMPT, extra_headers={"x-fake-usage": '{"prompt_tokenz": 1}'}
        )
    with pytest.raises(openai.BadRequestError, match="completion_tokens must be a whole number"):
        client.chat.completions.create(
            model="gpt-4o", messages=PROMPT, extra_headers={"x-fake-usage": '{"completion_tokens": -1}'}
        )
    assert [r["status_code"] for r in new_rows()] == [400, 400]


# -- a stream cut off (the connection drops half-way) ---------------------------------------------------------


@BOTH_MODES
@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini", "xai"])
def test_truncated_stream_is_priced_on_what_was_seen_or_not_at_all(mode, provider, meter, meter_ca, new_rows):
    headers = {"x-fake-scenario": "truncate"}
    cut_off = (httpx.HTTPError, anthropic.APIError, openai.APIError, genai_errors.APIError)
    with pytest.raises(cut_off):
        if provider == "anthropic":
            anthropic_call(
                anthropic_client(mode, meter, meter_ca), "claude-sonnet-4-5", CACHED, True, headers
            )
        elif provider == "gemini":
            client = gemini_client(mode, meter, meter_ca, headers)
            list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi"))
        else:
            client = (openai_client if provider == "openai" else xai_client)(mode, meter, meter_ca)
            model = "gpt-4o" if provider == "openai" else "grok-4.5"
            list(
                client.chat.completions.create(
                    model=model,
                    messages=PROMPT,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
            )
    (row,) = new_rows()
    assert row["status_code"] == 200 and row["streamed"] == 1 and row["complete"] == 0 and row["error"]
    if provider == "anthropic":
        # message_start's counts (with its placeholder output of 1) were seen: priced on them, as the
        # mid-stream error above.
        tokens = {**CACHED_ROW, "output_tokens": 1}
        cost = usd((1000, "3"), (2000, "0.30"), (300, "3.75"), (400, "6"), (1, "15"))
        assert_priced(row, tokens, cost, "anthropic/claude-sonnet-4-5+incomplete-usage")
    elif provider == "gemini":
        # Every Gemini chunk carries running counts: the first (11 prompt, 6 of 20 candidates, 5 thoughts)
        # was seen, and is priced at gemini-2.5-pro's $1.25 input, $10 output.
        tokens = {"input_tokens": 11, "output_tokens": 11, "reasoning_tokens": 5}
        assert_priced(row, tokens, usd((11, "1.25"), (11, "10")), "gemini/gemini-2.5-pro+incomplete-usage")
    else:
        # An OpenAI-dialect stream carries its usage last: nothing known, nothing priced.
        assert row["input_tokens"] is None and row["output_tokens"] is None
        assert_unpriced(row, "token counts unknown: the response ended before its usage was seen")
