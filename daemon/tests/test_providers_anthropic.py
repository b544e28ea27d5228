"""Anthropic Messages: requests, JSON and SSE usage, cache accounting, streams cut short."""

from __future__ import annotations

import json

import pytest

from halton_meter.providers import parser_for, read_request
from halton_meter.testing import factories as f
from halton_meter.usage import Usage

SSE = "text/event-stream; charset=utf-8"


def parse(chunks, request=None, path="/v1/messages", **kw) -> Usage:
    return f.parse_body("anthropic", path, request or f.anthropic_request(), chunks, **kw)


# -- JSON -------------------------------------------------------------------------------------


def test_json_input_includes_cache_reads_and_both_kinds_of_writes() -> None:
    body = f.anthropic_message_body(
        input_tokens=50, output_tokens=120, cache_read=1000, cache_write_5m=300, cache_write_1h=200
    )
    usage = parse([body])
    assert usage.input_tokens == 50 + 1000 + 300 + 200
    assert usage.cache_read_tokens == 1000
    assert usage.cache_write_tokens == 300
    assert usage.cache_write_1h_tokens == 200
    assert usage.output_tokens == 120
    assert usage.reasoning_tokens is None
    assert usage.model_served == "claude-sonnet-4-5-20250929"
    assert usage.provider_request_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert usage.service_tier == "standard"
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_json_without_the_split_counts_every_write_as_five_minute() -> None:
    body = f.anthropic_message_body(input_tokens=10, output_tokens=5, cache_write_5m=500, split=False)
    usage = parse([body])
    # Without the split Anthropic did not say how many were 1-hour writes: unknown, not 0.
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (510, 500, None)


def test_json_body_in_several_chunks() -> None:
    body = f.anthropic_message_body(input_tokens=7, output_tokens=3, cache_read=90)
    usage = parse(f.byte_chunks(body, 13))
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (97, 90, 3)
    assert usage.complete is True


def test_web_search_requests_become_extra_units() -> None:
    usage = parse([f.anthropic_message_body(input_tokens=5, output_tokens=5, web_search_requests=2)])
    assert usage.extra_units == {"web_search_requests": 2, "web_fetch_requests": 0}


def test_region_is_read_from_inference_geo_and_unknown_without_it() -> None:
    usage = parse([f.anthropic_message_body(input_tokens=5, output_tokens=5, inference_geo="us")])
    assert usage.region == "us"
    assert parse([f.anthropic_message_body(input_tokens=5, output_tokens=5)]).region is None


def test_region_in_a_stream_from_message_start_or_the_delta() -> None:
    usage = parse(stream(inference_geo="global"), content_type=SSE)
    assert usage.region == "global"
    events = f.anthropic_stream(input_tokens=5, output_tokens=9)
    delta = next(i for i, e in enumerate(events) if b"message_delta" in e)
    document = json.loads(events[delta].split(b"data: ", 1)[1])
    document["usage"]["inference_geo"] = "us"
    events[delta] = f.sse_event(document, "message_delta")
    assert parse(events, content_type=SSE).region == "us"


def test_counts_anthropic_did_not_send_stay_unknown_not_zero() -> None:
    body = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 12, "output_tokens": 3},
        }
    ).encode()
    usage = parse([body])
    assert (usage.input_tokens, usage.output_tokens) == (12, 3)
    assert usage.cache_read_tokens is None and usage.cache_write_tokens is None
    assert usage.cache_write_1h_tokens is None and usage.reasoning_tokens is None
    assert usage.region is None and usage.extra_units == {}


def test_thinking_tokens_are_reasoning_within_output() -> None:
    message = f.anthropic_message(input_tokens=20, output_tokens=900)
    message["usage"]["output_tokens_details"] = {"thinking_tokens": 640}
    usage = parse([f.json_body(message)])
    assert (usage.output_tokens, usage.reasoning_tokens) == (900, 640)


def test_count_tokens_is_free() -> None:
    usage = parse([b'{"input_tokens": 2095}'], path="/v1/messages/count_tokens")
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (0, 0, True)


def test_error_response_reads_the_request_id_and_nothing_else() -> None:
    usage = parse([f.json_body(f.anthropic_error())], status_code=529)
    assert usage.provider_request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"
    assert usage.input_tokens is None and usage.output_tokens is None
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_body_that_is_not_json_is_one_parse_error() -> None:
    usage = parse([b"<html>502 Bad Gateway</html>"], content_type="text/html")
    assert usage.parse_errors == 1
    assert usage.input_tokens is None
    assert usage.complete is False


# -- SSE --------------------------------------------------------------------------------------


def stream(**kw):
    defaults = dict(
        input_tokens=25, output_tokens=150, cache_read=2000, cache_write_5m=100, cache_write_1h=50
    )
    defaults.update(kw)
    return f.anthropic_stream(**defaults)


def test_stream_reads_input_from_message_start_and_output_from_the_last_delta() -> None:
    usage = parse(stream(), content_type=SSE)
    assert usage.input_tokens == 25 + 2000 + 100 + 50
    assert usage.cache_read_tokens == 2000
    assert usage.cache_write_tokens == 100
    assert usage.cache_write_1h_tokens == 50
    assert usage.output_tokens == 150
    assert usage.model_served == "claude-sonnet-4-5-20250929"
    assert usage.provider_request_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_stream_fed_byte_by_byte_gives_the_same_usage() -> None:
    events = stream(web_search_requests=1)
    assert parse(f.byte_chunks(events, 1), content_type=SSE) == parse(events, content_type=SSE)


def test_message_delta_usage_is_cumulative_replace_do_not_add() -> None:
    usage = parse(stream(running_delta=True, output_tokens=150), content_type=SSE)
    assert usage.output_tokens == 150  # not 1 + 75 + 150


def test_message_delta_repeating_input_and_cache_counts_replaces_them() -> None:
    usage = parse(stream(delta_repeats_input=True), content_type=SSE)
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (2175, 2000, 150)


def test_message_delta_with_a_new_cache_total_keeps_the_1h_part() -> None:
    events = stream(cache_write_5m=100, cache_write_1h=50)
    last_delta = json.loads(events[-2].split(b"data: ", 1)[1])
    last_delta["usage"]["cache_creation_input_tokens"] = 400
    events[-2] = f.sse_event(last_delta, "message_delta")
    usage = parse(events, content_type=SSE)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (350, 50)
    assert usage.input_tokens == 25 + 2000 + 400


def test_web_search_in_the_final_delta() -> None:
    usage = parse(stream(web_search_requests=3), content_type=SSE)
    assert usage.extra_units == {"web_search_requests": 3, "web_fetch_requests": 0}


def test_truncated_stream_is_incomplete_with_what_was_seen() -> None:
    events = stream()[:-2]  # lost the closing message_delta and message_stop
    usage = parse(events, content_type=SSE)
    assert usage.complete is False
    assert usage.input_tokens == 2175
    assert usage.output_tokens == 1  # message_start's count: all that was seen


def test_stream_cut_inside_an_event_is_not_a_parse_error() -> None:
    whole = b"".join(stream())
    usage = parse([whole[: len(whole) - 40]], content_type=SSE)
    assert usage.complete is False
    assert usage.output_tokens == 150  # the final message_delta arrived whole
    assert usage.parse_errors == 0


def test_malformed_line_counts_one_error_and_the_rest_is_parsed() -> None:
    events = stream()
    events.insert(3, b"this line has no field\n\n")
    usage = parse(events, content_type=SSE)
    assert usage.parse_errors == 1
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (2175, 150, True)


def test_event_with_broken_json_counts_one_error() -> None:
    events = stream()
    events.insert(4, b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n')
    usage = parse(events, content_type=SSE)
    assert usage.parse_errors == 1
    assert usage.output_tokens == 150


def test_error_event_mid_stream_leaves_the_call_incomplete() -> None:
    events = [*stream()[:4], f.sse_event(f.anthropic_error(), "error")]
    usage = parse(events, content_type=SSE)
    assert usage.complete is False
    assert usage.input_tokens == 2175


def test_sse_without_a_content_type_is_sniffed() -> None:
    assert parse(stream(), content_type=None).output_tokens == 150


# -- requests ---------------------------------------------------------------------------------


def info_for(request: dict, path: str = "/v1/messages"):
    return read_request("anthropic", "POST", path, {}, f.json_body(request))


def test_request_model_stream_and_tier() -> None:
    info = info_for(f.anthropic_request(model="claude-opus-4-1", stream=True, service_tier="standard_only"))
    assert (info.provider, info.endpoint, info.model_requested) == (
        "anthropic",
        "/v1/messages",
        "claude-opus-4-1",
    )
    assert info.streamed is True
    assert info.service_tier == "standard_only"
    assert info.batch is False


def test_prompt_hash_ignores_key_order_whitespace_and_volatile_fields() -> None:
    request = f.anthropic_request()
    base = info_for(request).prompt_hash
    reordered = json.dumps(dict(reversed(list(request.items()))), indent=4).encode()
    assert read_request("anthropic", "POST", "/v1/messages", {}, reordered).prompt_hash == base
    noisy = f.anthropic_request(stream=True, temperature=0.2, metadata={"user_id": "u-1"})
    noisy["system"][0].pop("cache_control")
    assert info_for(noisy).prompt_hash == base
    assert info_for(f.anthropic_request(prompt="Something else")).prompt_hash != base
    assert info_for(f.anthropic_request(model="claude-haiku-4-5")).prompt_hash != base
    assert len(base) == 64


def test_batch_endpoints_are_batch_and_ids_are_placeholders() -> None:
    create = read_request("anthropic", "POST", "/v1/messages/batches", {}, b'{"requests": []}')
    assert (create.endpoint, create.batch) == ("/v1/messages/batches", True)
    results = read_request(
        "anthropic", "GET", "/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results", {}, b""
    )
    assert (results.endpoint, results.batch) == ("/v1/messages/batches/{batch_id}/results", True)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"model": 7}'])
def test_odd_request_bodies_never_raise(body: bytes) -> None:
    info = read_request("anthropic", "POST", "/v1/messages?beta=true", {}, body)
    assert info.endpoint == "/v1/messages"
    assert info.model_requested is None
    assert info.prompt_hash is None


def test_parser_never_raises_on_garbage() -> None:
    info = info_for(f.anthropic_request())
    parser = parser_for(info, 200, SSE)
    for chunk in (
        b"\x00\xff" * 100,
        b"data: {\n\n",
        b"data: [1,2]\n\n",
        b'data: {"type": "message_delta"}\n\n',
    ):
        parser.feed(chunk)
    usage = parser.finish()
    assert usage.parse_errors >= 2
    assert parser.finish() is usage  # idempotent


def test_oversized_body_salvages_ids_from_the_head_and_usage_from_the_tail() -> None:
    message = f.anthropic_message(input_tokens=40, output_tokens=60_000, text="x" * (9 * 1024 * 1024))
    message["content"].append(
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "t", "input": {}}
    )
    usage = parse(f.byte_chunks(f.json_body(message), 1 << 20))
    assert usage.provider_request_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert usage.model_served == "claude-sonnet-4-5-20250929"
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (40, 60_000, True)
