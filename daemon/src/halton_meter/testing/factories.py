"""Realistic provider payloads for tests and fake provider servers, and small price catalogues.

Shapes follow the providers' API references and SDK types (anthropic-sdk-python ``types/usage.py``,
``message_delta_usage.py``, ``cache_creation.py``; openai-python ``completion_usage.py``,
``responses/response_usage.py``; google-genai ``GenerateContentResponseUsageMetadata``; xAI's
cost-tracking guide). Every builder is parameterised by model and token counts, in the provider's
OWN wire convention (e.g. Anthropic ``input_tokens`` excludes cache tokens), so a test states the
wire numbers and asserts our normalised ones.

JSON bodies come as dicts (``*_body`` functions return the encoded bytes); streams come as a list of
byte chunks, one complete SSE event (or JSON-array piece) per chunk, ready to be re-split by a test
or written one by one by a fake server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# -- generic ------------------------------------------------------------------------------------


def sse_event(data: Any, event: str | None = None, newline: str = "\n") -> bytes:
    """One SSE event: optional ``event:`` line, one ``data:`` line, blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{newline}" if event else ""
    return f"{head}data: {payload}{newline}{newline}".encode()


def json_body(document: Any) -> bytes:
    return json.dumps(document).encode()


def byte_chunks(data: bytes | Iterable[bytes], size: int = 1) -> list[bytes]:
    """Re-split a body into chunks of ``size`` bytes (1 = byte by byte), ignoring event borders."""
    whole = data if isinstance(data, bytes) else b"".join(data)
    return [whole[i : i + size] for i in range(0, len(whole), size)]


# -- Anthropic ----------------------------------------------------------------------------------


def anthropic_request(
    model: str = "claude-sonnet-4-5", stream: bool = False, prompt: str = "Hello, Claude", **extra: Any
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        request["stream"] = True
    request.update(extra)
    return request


def anthropic_usage(
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write_5m: int = 0,
    cache_write_1h: int = 0,
    split: bool = True,
    web_search_requests: int = 0,
    service_tier: str = "standard",
    inference_geo: str | None = None,
) -> dict[str, Any]:
    """Anthropic's usage object. ``input_tokens`` here is the WIRE value: uncached input only."""
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write_5m + cache_write_1h,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "service_tier": service_tier,
    }
    if split:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache_write_5m,
            "ephemeral_1h_input_tokens": cache_write_1h,
        }
    if web_search_requests:
        usage["server_tool_use"] = {"web_search_requests": web_search_requests, "web_fetch_requests": 0}
    if inference_geo is not None:
        usage["inference_geo"] = inference_geo
    return usage


def anthropic_message(
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = 25,
    output_tokens: int = 15,
    message_id: str = "msg_01XFDUDYJgAACzvnptvVoYEL",
    text: str = "Hello! How can I help?",
    **usage_kw: Any,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(input_tokens, output_tokens, **usage_kw),
    }


def anthropic_message_body(**kw: Any) -> bytes:
    return json_body(anthropic_message(**kw))


def anthropic_stream(
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = 25,
    output_tokens: int = 15,
    message_id: str = "msg_01XFDUDYJgAACzvnptvVoYEL",
    text_parts: Iterable[str] = ("Hello", "! How can", " I help?"),
    delta_repeats_input: bool = False,
    running_delta: bool = False,
    **usage_kw: Any,
) -> list[bytes]:
    """A Messages stream. ``message_start`` has the input and cache counts (output 1); the closing
    ``message_delta`` has the CUMULATIVE output (and, with ``delta_repeats_input``, the input and
    cache counts again, as newer API versions send). ``running_delta`` adds an earlier
    ``message_delta`` with a running count, as a long turn (e.g. a server-tool pause) can."""
    web_searches = usage_kw.pop("web_search_requests", 0)
    start_usage = anthropic_usage(input_tokens, 1, **usage_kw)
    full = anthropic_usage(input_tokens, output_tokens, web_search_requests=web_searches, **usage_kw)
    delta_usage: dict[str, Any] = {"output_tokens": output_tokens}
    if delta_repeats_input:
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            delta_usage[key] = full[key]
    if web_searches:
        delta_usage["server_tool_use"] = full["server_tool_use"]
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [
        sse_event({"type": "message_start", "message": message}, "message_start"),
        sse_event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        sse_event({"type": "ping"}, "ping"),
    ]
    parts = list(text_parts)
    for i, part in enumerate(parts):
        events.append(
            sse_event(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
                "content_block_delta",
            )
        )
        if i == 0 and running_delta:
            # A mid-stream message_delta with a running (cumulative) count, which must be replaced.
            events.append(
                sse_event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": None, "stop_sequence": None},
                        "usage": {"output_tokens": max(1, output_tokens // 2)},
                    },
                    "message_delta",
                )
            )
    events += [
        sse_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": delta_usage,
            },
            "message_delta",
        ),
        sse_event({"type": "message_stop"}, "message_stop"),
    ]
    return events


def anthropic_error(
    status_type: str = "overloaded_error", request_id: str = "req_011CSHoEeqs5C35K2UUqR7Fy"
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": status_type, "message": "Overloaded"},
        "request_id": request_id,
    }


def anthropic_stream_error(error_type: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    """The ``error`` event Anthropic sends inside a stream that fails after it began (HTTP status 200)."""
    return sse_event({"type": "error", "error": {"type": error_type, "message": message}}, "error")


def anthropic_batch(
    batch_id: str,
    count: int,
    ended: bool,
    results_url: str | None,
    errored: int = 0,
    canceled: int = 0,
    expired: int = 0,
) -> dict[str, Any]:
    """A Message Batch object: ``results_url`` is set once processing has ended (on the API's own host)."""
    succeeded = count - errored - canceled - expired
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {
            "processing": 0 if ended else count,
            "succeeded": succeeded if ended else 0,
            "errored": errored if ended else 0,
            "canceled": canceled if ended else 0,
            "expired": expired if ended else 0,
        },
        "ended_at": "2026-12-06T10:05:00.000000Z" if ended else None,
        "created_at": "2026-12-06T10:00:00.000000Z",
        "expires_at": "2026-12-07T10:00:00.000000Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": results_url if ended else None,
    }


def anthropic_batch_result(custom_id: str, result: dict[str, Any]) -> bytes:
    """One line of a Message Batch results file (JSONL), with its newline."""
    return json.dumps({"custom_id": custom_id, "result": result}).encode() + b"\n"


def anthropic_batch_succeeded(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "succeeded", "message": message}


def anthropic_batch_errored(error_type: str = "invalid_request_error") -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": error_type, "message": "bad request"}},
    }


# -- OpenAI -------------------------------------------------------------------------------------


def openai_chat_request(
    model: str = "gpt-4o",
    stream: bool = False,
    include_usage: bool = True,
    prompt: str = "Say hi",
    **extra: Any,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": prompt},
        ],
    }
    if stream:
        request["stream"] = True
        if include_usage:
            request["stream_options"] = {"include_usage": True}
    request.update(extra)
    return request


def openai_chat_usage(
    prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> dict[str, Any]:
    """Chat Completions usage: prompt_tokens INCLUDES cached; completion_tokens INCLUDES reasoning."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_chat_completion(
    model: str = "gpt-4o-2024-08-06",
    prompt_tokens: int = 19,
    completion_tokens: int = 10,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    service_tier: str | None = "default",
    completion_id: str = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    text: str = "Hi there!",
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": openai_chat_usage(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens),
        "system_fingerprint": "fp_fc9f1d7035",
    }
    if service_tier is not None:
        document["service_tier"] = service_tier
    return document


def openai_chat_stream(
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 19,
    completion_tokens: int = 10,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    include_usage: bool = True,
    service_tier: str | None = "default",
    completion_id: str = "chatcmpl-123",
    text_parts: Iterable[str] = ("Hi", " there", "!"),
) -> list[bytes]:
    """A Chat Completions stream; with ``include_usage`` every chunk has ``usage: null`` and a last
    chunk with ``choices: []`` carries the usage, before ``data: [DONE]``."""

    def chunk(choices: list[Any], usage: Any = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 1694268190,
            "model": model,
            "system_fingerprint": "fp_44709d6fcb",
            "choices": choices,
        }
        if service_tier is not None:
            document["service_tier"] = service_tier
        if include_usage:
            document["usage"] = usage
        return document

    events = [
        sse_event(
            chunk(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
        )
    ]
    for part in text_parts:
        events.append(
            sse_event(
                chunk([{"index": 0, "delta": {"content": part}, "logprobs": None, "finish_reason": None}])
            )
        )
    events.append(sse_event(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])))
    if include_usage:
        usage = openai_chat_usage(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens)
        events.append(sse_event(chunk([], usage)))
    events.append(sse_event("[DONE]"))
    return events


def openai_responses_request(model: str = "gpt-4.1", stream: bool = False, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model, "instructions": "Be terse.", "input": "Tell me a joke."}
    if stream:
        request["stream"] = True
    request.update(extra)
    return request


def openai_response(
    model: str = "gpt-4.1-2025-04-14",
    input_tokens: int = 36,
    output_tokens: int = 87,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    status: str = "completed",
    response_id: str = "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    service_tier: str = "default",
    with_usage: bool = True,
) -> dict[str, Any]:
    """A Responses API ``response`` object (also the payload of its stream's lifecycle events)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1741476777,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": "Be terse.",
        "model": model,
        "output": (
            [
                {
                    "type": "message",
                    "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Why did the chicken...", "annotations": []}],
                }
            ]
            if status != "in_progress"
            else []
        ),
        "parallel_tool_calls": True,
        "service_tier": service_tier,
        "store": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": (
            {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": input_tokens + output_tokens,
            }
            if with_usage
            else None
        ),
        "user": None,
        "metadata": {},
    }


def openai_responses_stream(closing: str = "response.completed", **kw: Any) -> list[bytes]:
    """A Responses API stream: created, in_progress, output deltas, then ``closing`` with the usage."""
    item_id = "msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654"
    created = openai_response(status="in_progress", with_usage=False, **kw)
    created["service_tier"] = "auto"
    final_status = {"response.completed": "completed", "response.incomplete": "incomplete"}.get(
        closing, "failed"
    )
    events = [
        sse_event(
            {"type": "response.created", "sequence_number": 0, "response": created}, "response.created"
        ),
        sse_event(
            {"type": "response.in_progress", "sequence_number": 1, "response": created},
            "response.in_progress",
        ),
        sse_event(
            {
                "type": "response.output_item.added",
                "sequence_number": 2,
                "output_index": 0,
                "item": {
                    "id": item_id,
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                },
            },
            "response.output_item.added",
        ),
    ]
    for seq, part in enumerate(("Why did", " the chicken..."), start=3):
        events.append(
            sse_event(
                {
                    "type": "response.output_text.delta",
                    "sequence_number": seq,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": part,
                },
                "response.output_text.delta",
            )
        )
    events.append(
        sse_event(
            {"type": closing, "sequence_number": 5, "response": openai_response(status=final_status, **kw)},
            closing,
        )
    )
    return events


def openai_embedding(
    model: str = "text-embedding-3-small", prompt_tokens: int = 8, dims: int = 4
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": 0,
                "embedding": [round(0.0023064255 * (i + 1), 10) for i in range(dims)],
            }
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def openai_error(message: str = "Rate limit reached for gpt-4o", kind: str = "requests") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}


def openai_stream_error(message: str = "The server had an error while processing your request.") -> bytes:
    """The chunk a Chat Completions stream sends when it fails after it began: an error object, no
    choices, and no ``[DONE]`` after it (the SDK raises ``APIError`` on it)."""
    return sse_event({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def openai_responses_stream_error(sequence_number: int, code: str = "server_error") -> bytes:
    """The Responses API's in-stream ``error`` event (it closes the stream without ``response.completed``)."""
    return sse_event(
        {
            "type": "error",
            "code": code,
            "message": "The server had an error while processing your request.",
            "param": None,
            "sequence_number": sequence_number,
        },
        "error",
    )


def openai_file(file_id: str, size: int, purpose: str, filename: str = "batch.jsonl") -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 1765015200,
        "filename": filename,
        "purpose": purpose,
    }


def openai_batch(
    batch_id: str,
    input_file_id: str,
    endpoint: str,
    completed: bool,
    output_file_id: str | None,
    error_file_id: str | None,
    total: int,
    failed: int,
) -> dict[str, Any]:
    """A Batch object: the output and error files are named once it has completed."""
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": "24h",
        "status": "completed" if completed else "validating",
        "output_file_id": output_file_id if completed else None,
        "error_file_id": error_file_id if completed else None,
        "created_at": 1765015200,
        "in_progress_at": 1765015201 if completed else None,
        "expires_at": 1765101600,
        "completed_at": 1765015500 if completed else None,
        "request_counts": {
            "total": total,
            "completed": total - failed if completed else 0,
            "failed": failed if completed else 0,
        },
        "metadata": None,
    }


def openai_batch_output(
    line_id: str,
    custom_id: str,
    status_code: int | None,
    body: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
) -> bytes:
    """One line of a Batch output or error file (JSONL), with its newline: ``response`` is null for a request
    that never ran."""
    response = None
    if status_code is not None:
        response = {"status_code": status_code, "request_id": f"req_{line_id}", "body": body}
    line = {"id": line_id, "custom_id": custom_id, "response": response, "error": error}
    return json.dumps(line).encode() + b"\n"


# -- Gemini -------------------------------------------------------------------------------------


def gemini_request(prompt: str = "Explain how AI works", **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {"temperature": 0.2},
    }
    request.update(extra)
    return request


def gemini_usage_metadata(
    prompt: int, candidates: int | None, thoughts: int = 0, cached: int = 0, tool_prompt: int = 0
) -> dict[str, Any]:
    """usageMetadata: promptTokenCount INCLUDES cachedContentTokenCount; thoughtsTokenCount is
    SEPARATE from candidatesTokenCount. Zero counts are omitted, as proto3 JSON does."""
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = prompt + (candidates or 0) + thoughts + tool_prompt
    if cached:
        meta["cachedContentTokenCount"] = cached
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if tool_prompt:
        meta["toolUsePromptTokenCount"] = tool_prompt
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return meta


def gemini_response(
    model_version: str = "gemini-2.5-pro",
    prompt: int = 11,
    candidates: int = 20,
    thoughts: int = 0,
    cached: int = 0,
    tool_prompt: int = 0,
    response_id: str = "mAitaLmkHPPlz7IPvtfUqQ4",
    text: str = "AI learns patterns from data.",
    finish_reason: str | None = "STOP",
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return {
        "candidates": [candidate],
        "usageMetadata": gemini_usage_metadata(prompt, candidates, thoughts, cached, tool_prompt),
        "modelVersion": model_version,
        "responseId": response_id,
    }


def gemini_stream_chunks(
    model_version: str = "gemini-2.5-pro",
    prompt: int = 11,
    candidates: int = 20,
    thoughts: int = 0,
    cached: int = 0,
    tool_prompt: int = 0,
    response_id: str = "mAitaLmkHPPlz7IPvtfUqQ4",
    parts: Iterable[str] = ("AI learns", " patterns", " from data."),
) -> list[dict[str, Any]]:
    """Streamed GenerateContentResponse chunks; each carries running usage, the last the final."""
    texts = list(parts)
    chunks = []
    for i, part in enumerate(texts):
        last = i == len(texts) - 1
        running = candidates if last else max(1, candidates * (i + 1) // len(texts))
        chunks.append(
            gemini_response(
                model_version,
                prompt,
                running,
                thoughts,
                cached,
                tool_prompt,
                response_id,
                part,
                finish_reason="STOP" if last else None,
            )
        )
    return chunks


def gemini_sse_stream(**kw: Any) -> list[bytes]:
    """``streamGenerateContent?alt=sse``: one ``data:`` event per chunk, CRLF line endings."""
    return [sse_event(chunk, newline="\r\n") for chunk in gemini_stream_chunks(**kw)]


def gemini_json_array_stream(**kw: Any) -> list[bytes]:
    """``streamGenerateContent`` without ``alt=sse``: one JSON array, written element by element."""
    chunks = gemini_stream_chunks(**kw)
    pieces = []
    for i, chunk in enumerate(chunks):
        prefix = "[" if i == 0 else ",\r\n"
        pieces.append((prefix + json.dumps(chunk, indent=2)).encode())
    pieces.append(b"]")
    return pieces


def gemini_error(code: int = 429, status: str = "RESOURCE_EXHAUSTED") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": status,
        }
    }


# -- xAI ----------------------------------------------------------------------------------------


def xai_usage(
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    cost_in_usd_ticks: int | None = None,
    reasoning_separate: bool = True,
) -> dict[str, Any]:
    """xAI usage. With ``reasoning_separate`` the reasoning tokens sit beside completion_tokens
    (total = prompt + completion + reasoning), as xAI's reasoning models report them."""
    total = prompt_tokens + completion_tokens + (reasoning_tokens if reasoning_separate else 0)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total,
        "prompt_tokens_details": {
            "text_tokens": prompt_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": cached_tokens,
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "num_sources_used": 0,
    }
    if cost_in_usd_ticks is not None:
        usage["cost_in_usd_ticks"] = cost_in_usd_ticks
    return usage


def xai_chat_completion(
    model: str = "grok-4-0709",
    prompt_tokens: int = 32,
    completion_tokens: int = 9,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    cost_in_usd_ticks: int | None = 37756000,
    reasoning_separate: bool = True,
    completion_id: str = "0daf962f-a275-4a3c-839a-047854645532",
    service_tier: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": 1752077400,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "101 multiplied by 3 is 303.", "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": xai_usage(
            prompt_tokens,
            completion_tokens,
            reasoning_tokens,
            cached_tokens,
            cost_in_usd_ticks,
            reasoning_separate,
        ),
        "system_fingerprint": "fp_3a7881249c",
    }
    if service_tier is not None:
        document["service_tier"] = service_tier
    return document


def xai_chat_stream(
    model: str = "grok-4-0709",
    prompt_tokens: int = 32,
    completion_tokens: int = 9,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    cost_in_usd_ticks: int | None = 37756000,
    completion_id: str = "0daf962f-a275-4a3c-839a-047854645532",
    service_tier: str | None = None,
) -> list[bytes]:
    """An xAI chat stream with ``include_usage``: the last chunk has ``choices: []`` and the usage."""

    def chunk(choices: list[Any], usage: Any = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 1752077400,
            "model": model,
            "choices": choices,
            "system_fingerprint": "fp_3a7881249c",
        }
        if service_tier is not None:
            document["service_tier"] = service_tier
        if usage is not None:
            document["usage"] = usage
        return document

    return [
        sse_event(chunk([{"index": 0, "delta": {"content": "101 multiplied", "role": "assistant"}}])),
        sse_event(chunk([{"index": 0, "delta": {"content": " by 3 is 303."}, "finish_reason": "stop"}])),
        sse_event(
            chunk(
                [],
                xai_usage(
                    prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, cost_in_usd_ticks
                ),
            )
        ),
        sse_event("[DONE]"),
    ]


# -- driving a parser ---------------------------------------------------------------------------


def parse_body(
    provider: str,
    path: str,
    request: dict[str, Any] | bytes,
    chunks: Iterable[bytes],
    status_code: int = 200,
    content_type: str | None = "application/json",
) -> Any:
    """Read the request, feed ``chunks`` to the matching parser, return the finished Usage."""
    from halton_meter.providers import parser_for, read_request

    body = request if isinstance(request, bytes) else json_body(request)
    info = read_request(provider, "POST", path, {"content-type": "application/json"}, body)
    parser = parser_for(info, status_code, content_type)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish()


# -- price catalogue ----------------------------------------------------------------------------
def catalogue_document(**models: dict[str, Any]) -> dict[str, Any]:
    """A valid format-1 price catalogue; ``models`` replaces the single default model, keyed by id."""
    entries = models or {"test-sonnet": catalogue_model()}
    return {
        "format": 1,
        "version": "2026-12-06+000000000000",
        "generated_from": [{"name": "genai-prices", "version": "0.2.5", "role": "primary"}],
        "models": [{"id": model_id, **model} for model_id, model in entries.items()],
    }


def catalogue_model(provider: str = "anthropic", **overrides: Any) -> dict[str, Any]:
    """One valid model: two dated prices (the first with a 200k tier), batch and US-only rates."""
    model: dict[str, Any] = {
        "provider": provider,
        "name": "Test Sonnet",
        "source": "test",
        "match": {"any": [{"equals": "test-sonnet"}, {"regex": "^test-sonnet-\\d{8}$"}]},
        "prices": [
            {
                "from": None,
                "source": "test",
                "rates": {"input": "3", "output": "15", "cache_read": "0.3", "cache_write_5m": "3.75"},
                "tiers": [{"above": 200000, "rates": {"input": "6", "output": "22.5"}}],
                "fees_per_1k": {"web_search": "10"},
            },
            {"from": "2026-03-13", "source": "test", "rates": {"input": "2", "output": "10"}},
        ],
        "modes": {
            "batch": [{"from": "2026-10-14", "source": "test", "rates": {"input": "1", "output": "5"}}]
        },
        "regions": {"us": {"multiplier": "1.1", "source": "test"}},
    }
    model.update(overrides)
    return model
