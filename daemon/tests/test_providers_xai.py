"""xAI: OpenAI-shaped usage, the billed cost in ticks, and reasoning tokens beside completion tokens."""

from __future__ import annotations

from decimal import Decimal

from halton_meter.providers import read_request
from halton_meter.providers.xai import ticks_to_usd
from halton_meter.testing import factories as f
from halton_meter.usage import Usage

CHAT = "/v1/chat/completions"


def parse(chunks, stream: bool = False, **kw) -> Usage:
    request = f.openai_chat_request(model="grok-4", stream=stream)
    return f.parse_body("xai", CHAT, request, chunks, **kw)


def test_billed_cost_from_ticks_is_exact() -> None:
    usage = parse([f.json_body(f.xai_chat_completion(cost_in_usd_ticks=37756000))])
    assert usage.billed_cost_usd == Decimal("0.0037756")
    assert (usage.input_tokens, usage.output_tokens) == (32, 9)
    assert usage.model_served == "grok-4-0709"
    assert usage.provider_request_id == "0daf962f-a275-4a3c-839a-047854645532"
    assert usage.complete is True


def test_ticks_conversion_keeps_every_tick() -> None:
    assert ticks_to_usd(1) == Decimal("0.0000000001")
    assert ticks_to_usd(10**10) == Decimal(1)
    assert ticks_to_usd(123456789012345) == Decimal("12345.6789012345")


def test_reasoning_reported_beside_completion_is_added_to_output() -> None:
    body = f.xai_chat_completion(
        prompt_tokens=686, completion_tokens=11, reasoning_tokens=112, cached_tokens=679
    )
    usage = parse([f.json_body(body)])
    assert usage.input_tokens == 686
    assert usage.cache_read_tokens == 679
    assert usage.output_tokens == 11 + 112
    assert usage.reasoning_tokens == 112


def test_reasoning_already_inside_completion_is_not_added_twice() -> None:
    body = f.xai_chat_completion(
        prompt_tokens=163, completion_tokens=241, reasoning_tokens=204, reasoning_separate=False
    )
    usage = parse([f.json_body(body)])
    assert (usage.output_tokens, usage.reasoning_tokens) == (241, 204)


def test_stream_with_usage_and_cost() -> None:
    events = f.xai_chat_stream(
        prompt_tokens=40, completion_tokens=20, reasoning_tokens=300, cost_in_usd_ticks=52000000
    )
    usage = parse(events, stream=True, content_type="text/event-stream")
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (40, 320, 300)
    assert usage.billed_cost_usd == Decimal("0.0052")
    assert usage.complete is True
    assert parse(f.byte_chunks(events, 1), stream=True, content_type="text/event-stream") == usage


def test_missing_ticks_leave_billed_cost_unknown() -> None:
    usage = parse([f.json_body(f.xai_chat_completion(cost_in_usd_ticks=None))])
    assert usage.billed_cost_usd is None
    assert usage.input_tokens == 32


def test_request_is_openai_dialect_under_provider_xai() -> None:
    info = read_request(
        "xai", "POST", CHAT, {}, f.json_body(f.openai_chat_request(model="grok-4", stream=True))
    )
    assert (info.provider, info.endpoint, info.model_requested, info.streamed) == (
        "xai",
        CHAT,
        "grok-4",
        True,
    )
    assert info.prompt_hash is not None


def test_details_xai_did_not_send_stay_unknown_not_zero() -> None:
    body = {"id": "x-1", "object": "chat.completion", "model": "grok-4-0709",
            "usage": {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 41}}  # fmt: skip
    usage = parse([f.json_body(body)])
    assert (usage.input_tokens, usage.output_tokens) == (32, 9)
    assert usage.cache_read_tokens is None and usage.reasoning_tokens is None
    assert usage.billed_cost_usd is None
