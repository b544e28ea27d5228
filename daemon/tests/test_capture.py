"""Capture addon with mitmproxy's test helpers: the tap, decoding, interruptions, failures."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from halton_meter.capture import CALL, Capture, CapturedCall
from halton_meter.health import Health
from halton_meter.routing import ROUTE, Route
from halton_meter.testing import factories as f

REQUEST = f.json_body(f.anthropic_request(stream=True))
EVENTS = f.anthropic_stream(model="claude-sonnet-4-5", input_tokens=100, output_tokens=20)


def metered_flow(body: bytes = REQUEST) -> http.HTTPFlow:
    flow = tflow.tflow(
        req=http.Request.make(
            "POST", "https://api.anthropic.com/v1/messages", body, {"content-type": "application/json"}
        )
    )
    flow.metadata[ROUTE] = Route("anthropic", "proxy", "/v1/messages")
    return flow


def sse_response(headers: dict[str, str] | None = None) -> http.Response:
    response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    response.headers.pop("content-length", None)
    response.headers.update(headers or {})  # after make(): make() would try to encode the empty body
    return response


async def run_stream(
    capture: Capture,
    flow: http.HTTPFlow,
    chunks: list[bytes],
    response: http.Response,
    *,
    end: str = "response",
) -> list[bytes]:
    await capture.request(flow)
    flow.response = response
    await capture.responseheaders(flow)
    assert callable(flow.response.stream), "every metered response is streamed through the tap"
    forwarded = [flow.response.stream(chunk) for chunk in chunks]
    if end == "response":
        flow.response.stream(b"")
        await capture.response(flow)
    else:
        flow.error = tflow.terr("Server disconnected.")
        await capture.error(flow)
    return forwarded


def captured(
    chunks: list[bytes],
    response: http.Response | None = None,
    *,
    end: str = "response",
    capture: Capture | None = None,
    **options,
):
    async def go():
        addon = capture or Capture(Health())
        with taddons.context(addon) as tctx:
            if options:
                tctx.configure(addon, **options)
            flow = metered_flow()
            forwarded = await run_stream(addon, flow, chunks, response or sse_response(), end=end)
            return forwarded, flow.metadata[CALL], addon

    return asyncio.run(go())


def test_chunks_pass_unchanged_and_usage_is_read_byte_by_byte():
    chunks = f.byte_chunks(EVENTS, 7)
    forwarded, call, _ = captured(chunks)
    assert forwarded == chunks  # same objects, same order
    assert isinstance(call, CapturedCall)
    assert call.status_code == 200 and call.info.streamed
    assert call.usage.complete and call.usage.input_tokens == 100 and call.usage.output_tokens == 20
    assert call.error is None and not call.capture_failed


def test_a_gzip_stream_is_decoded_for_the_parser_only():
    compressed = gzip.compress(b"".join(EVENTS))
    chunks = f.byte_chunks(compressed, 50)
    forwarded, call, _ = captured(chunks, sse_response({"content-encoding": "gzip"}))
    assert b"".join(forwarded) == compressed
    assert call.usage.output_tokens == 20 and call.usage.complete


def test_an_unknown_content_encoding_still_records_the_call():
    forwarded, call, capture = captured([b"\x00\x01garbage"], sse_response({"content-encoding": "snappy"}))
    assert forwarded == [b"\x00\x01garbage"]
    assert call.usage is None and call.status_code == 200
    assert capture.health.errors() == {"capture.content_encoding": 1}


def test_an_interrupted_stream_keeps_what_was_seen():
    _, call, _ = captured(EVENTS[:3], end="error")
    assert call.error == "Server disconnected."
    assert not call.usage.complete
    assert call.usage.input_tokens == 100


def test_an_error_before_any_response_is_recorded_without_status():
    async def go():
        capture = Capture(Health())
        with taddons.context(capture):
            flow = metered_flow()
            await capture.request(flow)
            flow.error = tflow.terr("Connection refused")
            await capture.error(flow)
            return flow.metadata[CALL]

    call = asyncio.run(go())
    assert call.status_code is None and call.usage is None and call.error == "Connection refused"


def test_a_failing_chunk_is_still_forwarded_and_counted():
    capture = Capture(Health())
    capture.fault = lambda stage: (_ for _ in ()).throw(RuntimeError("boom")) if stage == "chunk" else None
    forwarded, call, _ = captured(EVENTS, capture=capture)
    assert forwarded == EVENTS
    assert capture.health.errors() == {"capture.stream": 1}
    assert call.capture_failed and call.error


def test_bodies_are_kept_only_when_asked_and_capped():
    _, call, _ = captured(EVENTS)
    assert call.request_body is None and call.response_body is None
    _, call, _ = captured(EVENTS, halton_capture_bodies=True, halton_body_max_bytes=64)
    assert call.request_body == REQUEST[:64]
    assert call.response_body == b"".join(EVENTS)[:64]
    assert call.bodies_truncated


def test_large_request_bodies_are_read_off_the_event_loop():
    body = json.dumps(
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
    ).encode()

    async def go():
        capture = Capture(Health())
        with taddons.context(capture):
            flow = metered_flow(body)
            await capture.request(flow)
            return flow.metadata["halton.capture"].info

    info = asyncio.run(go())
    assert info.model_requested == "claude-sonnet-4-5" and info.prompt_hash


def test_unmetered_flows_are_left_alone():
    async def go():
        capture = Capture(Health())
        with taddons.context(capture):
            flow = tflow.tflow(resp=True)
            await capture.request(flow)
            await capture.responseheaders(flow)
            await capture.response(flow)
            return flow

    flow = asyncio.run(go())
    assert flow.response.stream is False and CALL not in flow.metadata


def test_negative_body_cap_is_refused():
    async def go():
        capture = Capture(Health())
        with taddons.context(capture) as tctx, pytest.raises(exceptions.OptionsError):
            tctx.configure(capture, halton_body_max_bytes=-1)

    asyncio.run(go())


def answers_while_tapping(chunks: list[bytes], response: http.Response) -> list[tuple[int, CapturedCall]]:
    """Drive a response through the tap; each hand-over to ``on_answered`` with the number of chunks
    the tap had returned (so mitmproxy had sent) by then."""

    async def go():
        capture = Capture(Health())
        returned: list[bytes] = []
        answers: list[tuple[int, CapturedCall]] = []
        capture.on_answered = lambda flow, call: answers.append((len(returned), call))
        with taddons.context(capture):
            flow = metered_flow()
            await capture.request(flow)
            flow.response = response
            await capture.responseheaders(flow)
            for chunk in [*chunks, b""]:
                returned.append(flow.response.stream(chunk))
            await capture.response(flow)
        return answers

    return asyncio.run(go())


def test_a_body_with_a_length_is_answered_before_its_last_chunk_is_returned():
    body = f.json_body(f.anthropic_message(model="claude-sonnet-4-5", input_tokens=100, output_tokens=20))
    response = http.Response.make(200, b"", {"content-type": "application/json"})
    response.headers["content-length"] = str(len(body))
    chunks = f.byte_chunks(body, len(body) // 3 + 1)
    assert len(chunks) == 3
    answers = answers_while_tapping(chunks, response)
    # Once, while the third chunk was in the tap: the client cannot have had all the bytes yet.
    assert [at for at, _ in answers] == [2]
    call = answers[0][1]
    assert call.usage.complete and call.usage.output_tokens == 20 and call.status_code == 200


def test_a_stream_is_answered_on_its_closing_event_and_again_when_it_ends():
    answers = answers_while_tapping(list(EVENTS), sse_response())
    # The chunk carrying message_stop (a client reading events may stop there), then the body's end
    # (b"", before mitmproxy sends the terminating chunk) with the settled call.
    assert [at for at, _ in answers] == [len(EVENTS) - 1, len(EVENTS)]
    snapshot, final = answers[0][1], answers[1][1]
    assert snapshot.usage.complete and snapshot.usage == final.usage
    assert snapshot.request_uid == final.request_uid
    assert snapshot.usage is not final.usage  # a copy: the parser may still change its own


def test_a_failing_answered_hook_never_reaches_the_call():
    def broken(flow, call):
        raise RuntimeError("journal exploded")

    async def go():
        capture = Capture(Health())
        capture.on_answered = broken
        with taddons.context(capture):
            flow = metered_flow()
            forwarded = await run_stream(capture, flow, list(EVENTS), sse_response())
            return forwarded, flow.metadata[CALL], capture

    forwarded, call, capture = asyncio.run(go())
    assert forwarded == list(EVENTS) and call.usage.complete
    assert capture.health.errors() == {"capture.answered": 2}
