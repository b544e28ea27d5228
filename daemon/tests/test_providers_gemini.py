"""Gemini: model from the path, usageMetadata (cached inside prompt, thoughts beside candidates), streams."""

from __future__ import annotations

import json

import pytest

from halton_meter.providers import read_request
from halton_meter.testing import factories as f
from halton_meter.usage import Usage

GENERATE = "/v1beta/models/gemini-2.5-pro:generateContent"
STREAM_SSE = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
STREAM_ARRAY = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"


def parse(path, chunks, content_type="application/json", **kw) -> Usage:
    return f.parse_body("gemini", path, f.gemini_request(), chunks, content_type=content_type, **kw)


def test_generate_content_json() -> None:
    body = f.json_body(
        f.gemini_response(prompt=4000, candidates=350, thoughts=1200, cached=3000, tool_prompt=0)
    )
    usage = parse(GENERATE, [body])
    assert usage.input_tokens == 4000  # promptTokenCount already includes the 3000 cached
    assert usage.cache_read_tokens == 3000
    assert usage.cache_write_tokens is None  # Gemini reports no cache writes
    assert usage.output_tokens == 350 + 1200  # thoughts are separate from candidates on the wire
    assert usage.reasoning_tokens == 1200
    assert usage.model_served == "gemini-2.5-pro"
    assert usage.provider_request_id == "mAitaLmkHPPlz7IPvtfUqQ4"
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_tool_use_prompt_tokens_are_input() -> None:
    body = f.json_body(f.gemini_response(prompt=100, candidates=40, tool_prompt=900))
    usage = parse(GENERATE, [body])
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (1000, 40, None)


def test_counts_gemini_did_not_send_stay_unknown_not_zero() -> None:
    # A model that does not think sends no thoughtsTokenCount; a call without a cache no cachedContentTokenCount.
    usage = parse(GENERATE, [f.json_body(f.gemini_response(prompt=30, candidates=7))])
    assert (usage.input_tokens, usage.output_tokens) == (30, 7)
    assert usage.reasoning_tokens is None and usage.cache_read_tokens is None
    assert usage.cache_write_tokens is None and usage.cache_write_1h_tokens is None


def test_output_from_the_total_when_nothing_generated_is_omitted() -> None:
    blocked = f.gemini_response(prompt=12, candidates=0, finish_reason=None)
    assert "candidatesTokenCount" not in blocked["usageMetadata"]
    usage = parse(GENERATE, [f.json_body(blocked)])
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (12, 0, None)
    no_total = {"usageMetadata": {"promptTokenCount": 12}, "modelVersion": "gemini-2.5-pro"}
    assert parse(GENERATE, [f.json_body(no_total)]).output_tokens is None


def test_sse_stream_takes_the_last_usage_metadata() -> None:
    events = f.gemini_sse_stream(prompt=11, candidates=120, thoughts=300)
    usage = parse(STREAM_SSE, events, content_type="text/event-stream")
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (11, 420, 300)
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_sse_stream_byte_by_byte_equals_whole() -> None:
    events = f.gemini_sse_stream(prompt=250, candidates=77, cached=128)
    whole = parse(STREAM_SSE, events, content_type="text/event-stream")
    assert parse(STREAM_SSE, f.byte_chunks(events, 1), content_type="text/event-stream") == whole
    assert (whole.input_tokens, whole.cache_read_tokens, whole.output_tokens) == (250, 128, 77)


def test_json_array_stream_without_alt_sse() -> None:
    pieces = f.gemini_json_array_stream(prompt=11, candidates=120, thoughts=30)
    usage = parse(STREAM_ARRAY, pieces)
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (11, 150, 30)
    assert usage.complete is True
    assert usage.parse_errors == 0
    assert parse(STREAM_ARRAY, f.byte_chunks(pieces, 1)) == usage


def test_json_array_stream_with_braces_and_escapes_inside_strings() -> None:
    chunks = f.gemini_stream_chunks(prompt=5, candidates=9, parts=('say "{[" \\ ok', "}]} done"))
    pieces = [b"[" + json.dumps(chunks[0]).encode(), b"," + json.dumps(chunks[1]).encode(), b"]"]
    usage = parse(STREAM_ARRAY, f.byte_chunks(pieces, 1))
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (5, 9, True)
    assert usage.parse_errors == 0


def test_truncated_stream_is_incomplete_with_the_last_counts_seen() -> None:
    events = f.gemini_sse_stream(prompt=11, candidates=120, parts=("a", "b", "c", "d"))[:2]
    usage = parse(STREAM_SSE, events, content_type="text/event-stream")
    assert usage.complete is False
    assert (usage.input_tokens, usage.output_tokens) == (11, 60)  # running count of chunk 2 of 4


def test_truncated_json_array_stream() -> None:
    pieces = f.gemini_json_array_stream(prompt=11, candidates=120)
    whole = b"".join(pieces)
    usage = parse(STREAM_ARRAY, [whole[: len(whole) - 200]])
    assert usage.complete is False
    assert usage.input_tokens == 11


def test_malformed_sse_line_counts_one_error() -> None:
    events = f.gemini_sse_stream(prompt=11, candidates=20)
    events.insert(1, b"oops\r\n\r\n")
    usage = parse(STREAM_SSE, events, content_type="text/event-stream")
    assert usage.parse_errors == 1
    assert (usage.output_tokens, usage.complete) == (20, True)


def test_blocked_prompt_closes_the_stream_with_prompt_tokens_only() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "blocked-1",
    }
    usage = parse(STREAM_SSE, [f.sse_event(blocked, newline="\r\n")], content_type="text/event-stream")
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (8, 0, True)


def test_error_body() -> None:
    usage = parse(GENERATE, [f.json_body(f.gemini_error())], status_code=429)
    assert usage.input_tokens is None
    assert usage.parse_errors == 0


def test_count_tokens_is_free() -> None:
    usage = parse("/v1beta/models/gemini-2.5-flash:countTokens", [b'{"totalTokens": 31}'])
    assert (usage.input_tokens, usage.output_tokens) == (0, 0)


# -- requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, endpoint, model, streamed",
    [
        (GENERATE, "/v1beta/models/{model}:generateContent", "gemini-2.5-pro", False),
        (STREAM_SSE, "/v1beta/models/{model}:streamGenerateContent", "gemini-2.5-pro", True),
        (
            "/v1/models/gemini-2.5-flash:streamGenerateContent?key=SECRET",
            "/v1/models/{model}:streamGenerateContent",
            "gemini-2.5-flash",
            True,
        ),
        (
            "/v1/projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
            "gemini-2.5-pro",
            False,
        ),
    ],
)
def test_request_endpoint_and_model_from_the_path(
    path: str, endpoint: str, model: str, streamed: bool
) -> None:
    info = read_request("gemini", "POST", path, {}, f.json_body(f.gemini_request()))
    assert (info.endpoint, info.model_requested, info.streamed) == (endpoint, model, streamed)
    assert "SECRET" not in info.endpoint


def test_batch_generate_content_is_batch() -> None:
    info = read_request("gemini", "POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", {}, b"{}")
    assert (info.batch, info.endpoint) == (True, "/v1beta/models/{model}:batchGenerateContent")


def test_prompt_hash_follows_contents_not_generation_config() -> None:
    def digest(**kw):
        return read_request("gemini", "POST", GENERATE, {}, f.json_body(f.gemini_request(**kw))).prompt_hash

    base = digest()
    assert digest(generationConfig={"temperature": 1.0, "maxOutputTokens": 5}) == base
    assert digest(prompt="Another question") != base
    other_model = read_request(
        "gemini", "POST", GENERATE.replace("2.5-pro", "2.5-flash"), {}, f.json_body(f.gemini_request())
    ).prompt_hash
    assert other_model != base
