"""OpenAI: Chat Completions, Responses and Embeddings usage (JSON and SSE), Azure, batches, tiers."""

from __future__ import annotations

import gzip
import json

from halton_meter.providers import identify, read_request
from halton_meter.testing import factories as f
from halton_meter.usage import Usage

SSE = "text/event-stream"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


def parse(path, request, chunks, **kw) -> Usage:
    return f.parse_body("openai", path, request, chunks, **kw)


# -- Chat Completions -------------------------------------------------------------------------


def test_chat_json_prompt_includes_cached_and_completion_includes_reasoning() -> None:
    body = f.openai_chat_completion(
        model="o4-mini-2025-04-16",
        prompt_tokens=1200,
        completion_tokens=800,
        cached_tokens=1024,
        reasoning_tokens=640,
    )
    usage = parse(CHAT, f.openai_chat_request(model="o4-mini"), [f.json_body(body)])
    assert usage.input_tokens == 1200
    assert usage.cache_read_tokens == 1024
    assert usage.cache_write_tokens is None  # OpenAI reports no cache writes
    assert usage.output_tokens == 800
    assert usage.reasoning_tokens == 640
    assert usage.model_served == "o4-mini-2025-04-16"
    assert usage.provider_request_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert usage.service_tier == "default"
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_chat_stream_with_include_usage() -> None:
    events = f.openai_chat_stream(
        prompt_tokens=57, completion_tokens=17, cached_tokens=0, service_tier="flex"
    )
    usage = parse(CHAT, f.openai_chat_request(stream=True), events, content_type=SSE)
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (57, 0, 17)
    assert usage.reasoning_tokens == 0
    assert usage.model_served == "gpt-4o-mini-2024-07-18"
    assert usage.service_tier == "flex"
    assert usage.complete is True
    assert usage.parse_errors == 0


def test_chat_stream_byte_by_byte_equals_whole() -> None:
    events = f.openai_chat_stream(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920)
    request = f.openai_chat_request(stream=True)
    whole = parse(CHAT, request, events, content_type=SSE)
    assert parse(CHAT, request, f.byte_chunks(events, 1), content_type=SSE) == whole
    assert (whole.input_tokens, whole.cache_read_tokens) == (2006, 1920)


def test_chat_stream_without_include_usage_leaves_tokens_unknown() -> None:
    events = f.openai_chat_stream(include_usage=False)
    usage = parse(CHAT, f.openai_chat_request(stream=True, include_usage=False), events, content_type=SSE)
    assert usage.input_tokens is None
    assert usage.output_tokens is None
    assert usage.complete is True  # [DONE] was seen
    assert usage.model_served == "gpt-4o-mini-2024-07-18"


def test_chat_stream_usage_chunk_alone_marks_complete() -> None:
    events = f.openai_chat_stream()[:-1]  # [DONE] lost, the usage chunk arrived
    usage = parse(CHAT, f.openai_chat_request(stream=True), events, content_type=SSE)
    assert usage.complete is True
    assert usage.output_tokens == 10


def test_truncated_chat_stream_is_incomplete() -> None:
    events = f.openai_chat_stream()[:3]
    usage = parse(CHAT, f.openai_chat_request(stream=True), events, content_type=SSE)
    assert usage.complete is False
    assert usage.input_tokens is None
    assert usage.provider_request_id == "chatcmpl-123"


def test_malformed_line_in_a_chat_stream_counts_one_error() -> None:
    events = f.openai_chat_stream(prompt_tokens=9, completion_tokens=4)
    events.insert(2, b"dta: {oops}\n\n")
    usage = parse(CHAT, f.openai_chat_request(stream=True), events, content_type=SSE)
    assert usage.parse_errors == 1
    assert (usage.input_tokens, usage.output_tokens, usage.complete) == (9, 4, True)


def test_gzip_body_is_inflated_when_passed_undecoded() -> None:
    body = gzip.compress(f.json_body(f.openai_chat_completion(prompt_tokens=30, completion_tokens=3)))
    usage = parse(CHAT, f.openai_chat_request(), f.byte_chunks(body, 7))
    assert (usage.input_tokens, usage.output_tokens) == (30, 3)


def test_error_response_reads_nothing_and_counts_nothing() -> None:
    usage = parse(CHAT, f.openai_chat_request(), [f.json_body(f.openai_error())], status_code=429)
    assert usage.input_tokens is None
    assert usage.parse_errors == 0


def test_gateway_html_on_a_5xx_is_not_a_parse_error() -> None:
    usage = parse(
        CHAT,
        f.openai_chat_request(),
        [b"<html><body>502 Bad Gateway</body></html>"],
        status_code=502,
        content_type="text/html",
    )
    assert usage.parse_errors == 0
    assert usage.input_tokens is None


# -- Responses API ----------------------------------------------------------------------------


def test_responses_json() -> None:
    body = f.openai_response(input_tokens=5200, output_tokens=1300, cached_tokens=4096, reasoning_tokens=1024)
    usage = parse(RESPONSES, f.openai_responses_request(), [f.json_body(body)])
    assert (usage.input_tokens, usage.cache_read_tokens) == (5200, 4096)
    assert (usage.output_tokens, usage.reasoning_tokens) == (1300, 1024)
    assert usage.provider_request_id == "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41"
    assert usage.model_served == "gpt-4.1-2025-04-14"
    assert usage.complete is True


def test_details_openai_did_not_send_stay_unknown_not_zero() -> None:
    # Older models and gateways send bare counts: cached and reasoning tokens are then unknown, not 0.
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}}  # fmt: skip
    usage = parse(CHAT, f.openai_chat_request(), [f.json_body(chat)])
    assert (usage.input_tokens, usage.output_tokens) == (20, 4)
    assert usage.cache_read_tokens is None and usage.reasoning_tokens is None
    assert usage.cache_write_tokens is None and usage.cache_write_1h_tokens is None
    response = {"id": "resp_1", "object": "response", "model": "gpt-4.1", "status": "completed",
                "usage": {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}}  # fmt: skip
    usage = parse(RESPONSES, f.openai_responses_request(), [f.json_body(response)])
    assert (usage.input_tokens, usage.output_tokens) == (9, 2)
    assert usage.cache_read_tokens is None and usage.reasoning_tokens is None


def test_responses_stream_reads_usage_from_response_completed() -> None:
    events = f.openai_responses_stream(input_tokens=37, output_tokens=11, cached_tokens=0)
    request = f.openai_responses_request(stream=True)
    usage = parse(RESPONSES, request, events, content_type=SSE)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (37, 11, 0)
    assert usage.service_tier == "default"  # the tier that served it, not the "auto" asked for
    assert usage.complete is True
    assert parse(RESPONSES, request, f.byte_chunks(events, 1), content_type=SSE) == usage


def test_responses_stream_incomplete_event_also_closes() -> None:
    events = f.openai_responses_stream(closing="response.incomplete", input_tokens=10, output_tokens=4096)
    usage = parse(RESPONSES, f.openai_responses_request(stream=True), events, content_type=SSE)
    assert (usage.output_tokens, usage.complete) == (4096, True)


def test_responses_stream_cut_before_completed() -> None:
    events = f.openai_responses_stream()[:-1]
    usage = parse(RESPONSES, f.openai_responses_request(stream=True), events, content_type=SSE)
    assert usage.complete is False
    assert usage.input_tokens is None
    assert usage.model_served == "gpt-4.1-2025-04-14"


# -- Embeddings -------------------------------------------------------------------------------


def test_embeddings_have_prompt_tokens_and_zero_output() -> None:
    body = f.json_body(f.openai_embedding(prompt_tokens=8))
    usage = parse("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}, [body])
    assert (usage.input_tokens, usage.output_tokens, usage.model_served) == (8, 0, "text-embedding-3-small")


def test_oversized_embeddings_body_is_not_buffered_whole_but_usage_is_read() -> None:
    body = f.json_body(f.openai_embedding(prompt_tokens=123456, dims=900_000))
    assert len(body) > 8 * 1024 * 1024
    usage = parse(
        "/v1/embeddings", {"model": "text-embedding-3-large", "input": ["a"]}, f.byte_chunks(body, 65536)
    )
    assert (usage.input_tokens, usage.output_tokens) == (123456, 0)
    assert usage.model_served == "text-embedding-3-small"
    assert usage.complete is True
    assert usage.parse_errors == 0


# -- requests ---------------------------------------------------------------------------------


def test_request_reads_model_stream_and_service_tier() -> None:
    body = f.json_body(f.openai_chat_request(model="o3", stream=True, service_tier="flex"))
    info = read_request("openai", "POST", CHAT, {}, body)
    assert (info.endpoint, info.model_requested, info.streamed, info.service_tier) == (
        CHAT,
        "o3",
        True,
        "flex",
    )
    assert info.batch is False


def test_prompt_hash_excludes_stream_options_user_and_sampling() -> None:
    base = read_request("openai", "POST", CHAT, {}, f.json_body(f.openai_chat_request())).prompt_hash
    noisy = f.openai_chat_request(
        stream=True, user="dev-7", temperature=0.9, max_tokens=10, seed=4, metadata={"a": "b"}
    )
    assert read_request("openai", "POST", CHAT, {}, f.json_body(noisy)).prompt_hash == base
    with_tools = f.openai_chat_request(tools=[{"type": "function", "function": {"name": "lookup"}}])
    assert read_request("openai", "POST", CHAT, {}, f.json_body(with_tools)).prompt_hash != base


def test_azure_deployment_path_is_normalised_and_model_taken_from_deployment() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    info = read_request(
        "openai", "POST", "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21", {}, body
    )
    assert (info.endpoint, info.model_requested) == ("/chat/completions", "gpt4o-prod")
    v1 = read_request("openai", "POST", "/openai/v1/responses", {}, f.json_body(f.openai_responses_request()))
    assert v1.endpoint == "/v1/responses"


def test_batch_endpoints() -> None:
    create = read_request(
        "openai",
        "POST",
        "/v1/batches",
        {},
        b'{"input_file_id": "file-abc", "endpoint": "/v1/chat/completions"}',
    )
    assert (create.endpoint, create.batch) == ("/v1/batches", True)
    status = read_request("openai", "GET", "/v1/batches/batch_abc123", {}, b"")
    assert (status.endpoint, status.batch) == ("/v1/batches/{batch_id}", True)


def test_identify_hosts() -> None:
    assert identify("api.openai.com") == "openai"
    assert identify("API.OPENAI.COM:443") == "openai"
    assert identify("api.anthropic.com") == "anthropic"
    assert identify("generativelanguage.googleapis.com") == "gemini"
    assert identify("api.x.ai") == "xai"
    assert identify("example.com") is None
    extra = {"*.openai.azure.com": "openai", "llm-gateway.corp.example": "anthropic", "bad.example": "nope"}
    assert identify("myco.openai.azure.com", extra) == "openai"
    assert identify("llm-gateway.corp.example:8443", extra) == "anthropic"
    assert identify("bad.example", extra) is None
