"""End to end through real sockets: official SDKs -> the running meter (port 0) -> fake providers.

Both ways in are covered for every provider, streamed and not: base-URL mode (plain HTTP to the
meter, no CA needed) and proxy mode (``HTTPS_PROXY``-style CONNECT with TLS interception by the
meter's CA, the upstream redirected to the fake server by ``[providers.X] upstream``).

Expected costs are worked out here from the providers' published per-million-token prices, not
from the pricing module, so a pricing regression shows up as a number that no longer matches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import uuid
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from halton_meter.testing.sdk_clients import (
    MODES,
    anthropic_client,
    base_url,
    gemini_client,
    openai_client,
    plain_client,
    proxied_client,
    xai_http,
    xai_url,
)

# -- expected figures (the fakes' token counts, see fake_providers.py) --------------------------------

# claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 5-minute cache write, $15 output per MTok.
# Wire: 120 uncached input + 30 cache read + 10 cache write; 45 output.
ANTHROPIC_ROW = {"input_tokens": 160, "output_tokens": 45, "cache_read_tokens": 30, "cache_write_tokens": 10}
ANTHROPIC_COST = (120 * Decimal(3) + 30 * Decimal("0.30") + 10 * Decimal("3.75") + 45 * Decimal(15)) / 10**6
# gpt-4o: $2.50 input, $1.25 cached input, $10 output. 200 prompt tokens of which 64 cached; 50 output.
OPENAI_ROW = {"input_tokens": 200, "output_tokens": 50, "cache_read_tokens": 64, "reasoning_tokens": 0}
OPENAI_COST = (136 * Decimal("2.50") + 64 * Decimal("1.25") + 50 * Decimal(10)) / 10**6
# gpt-4.1 (Responses API): $2 input, $8 output. 36 input, 87 output of which 20 reasoning.
RESPONSES_ROW = {"input_tokens": 36, "output_tokens": 87, "reasoning_tokens": 20}
RESPONSES_COST = (36 * Decimal(2) + 87 * Decimal(8)) / 10**6
# gemini-2.5-pro (<=200k prompt): $1.25 input, $10 output (thinking billed as output). 11 prompt;
# 20 candidates + 5 thoughts = 25 output.
GEMINI_ROW = {"input_tokens": 11, "output_tokens": 25, "reasoning_tokens": 5}
GEMINI_COST = (11 * Decimal("1.25") + 25 * Decimal(10)) / 10**6
# xAI states its bill: cost_in_usd_ticks 37,756,000 at 10^10 ticks per USD.
XAI_ROW = {"input_tokens": 32, "output_tokens": 9}
XAI_COST = Decimal(37756000) / 10**10


def nanos(cost: Decimal) -> int:
    return int(cost * 10**9)


def nonce() -> str:
    return uuid.uuid4().hex[:12]


def assert_row(
    row: dict[str, Any], provider: str, tokens: dict[str, int], cost: Decimal, timed: bool = True, **more: Any
) -> None:
    assert row["provider"] == provider
    for name, value in tokens.items():
        assert row[name] == value, (name, row[name], value)
    assert row["cost_nusd"] == nanos(cost), (row["cost_nusd"], nanos(cost), row["unpriced_reason"])
    assert row["status_code"] == 200
    assert row["complete"] == 1
    assert row["price_card"]
    if timed:
        assert row["latency_ms"] is not None and row["ttfb_ms"] is not None
    else:  # a batched request: the meter did not see it run
        assert row["latency_ms"] is None and row["ttfb_ms"] is None
    for name, value in more.items():
        assert row[name] == value, (name, row[name], value)


# -- every provider, both modes, streamed and not -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_sdk(mode, meter, meter_ca, new_rows, fakes):
    client = anthropic_client(mode, meter, meter_ca)
    n1, n2 = nonce(), nonce()
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-nonce": n1},
    )
    assert message.content[0].text == f"nonce {n1}  says  hello"
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-nonce": n2},
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == f"nonce {n2} says hello"
    plain, streamed = new_rows()
    assert_row(plain, "anthropic", ANTHROPIC_ROW, ANTHROPIC_COST, streamed=0, provider_request_id=f"msg_{n1}")
    assert_row(
        streamed, "anthropic", ANTHROPIC_ROW, ANTHROPIC_COST, streamed=1, provider_request_id=f"msg_{n2}"
    )
    for row in (plain, streamed):
        assert row["model_requested"] == "claude-sonnet-4-5" and row["endpoint"] == "/v1/messages"
        assert row["project"] == "default" and row["attribution_tier"] == "default"
        assert row["prompt_hash"] and len(row["prompt_hash"]) == 64
    assert plain["prompt_hash"] == streamed["prompt_hash"]  # same prompt, streamed or not


@pytest.mark.parametrize("mode", MODES)
def test_openai_sdk_chat_and_responses(mode, meter, meter_ca, new_rows):
    client = openai_client(mode, meter, meter_ca)
    n1, n2 = nonce(), nonce()
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-fake-nonce": n1}
    )
    assert completion.usage.prompt_tokens == 200
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-fake-nonce": n2},
        )
    )
    assert chunks[-1].usage.completion_tokens == 50
    response = client.responses.create(model="gpt-4.1", input="Tell me a joke.")
    assert response.usage.output_tokens == 87
    events = list(client.responses.create(model="gpt-4.1", input="Tell me a joke.", stream=True))
    assert events[-1].type == "response.completed"
    chat, chat_stream, resp, resp_stream = new_rows()
    assert_row(chat, "openai", OPENAI_ROW, OPENAI_COST, streamed=0, provider_request_id=f"chatcmpl-{n1}")
    assert_row(
        chat_stream, "openai", OPENAI_ROW, OPENAI_COST, streamed=1, provider_request_id=f"chatcmpl-{n2}"
    )
    assert_row(resp, "openai", RESPONSES_ROW, RESPONSES_COST, streamed=0, endpoint="/v1/responses")
    assert_row(resp_stream, "openai", RESPONSES_ROW, RESPONSES_COST, streamed=1, endpoint="/v1/responses")


@pytest.mark.parametrize("mode", MODES)
def test_gemini_sdk(mode, meter, meter_ca, new_rows):
    client = gemini_client(mode, meter, meter_ca, {"x-fake-nonce": "gem"})
    result = client.models.generate_content(model="gemini-2.5-pro", contents="Explain how AI works")
    assert result.usage_metadata.prompt_token_count == 11
    parts = [
        c.text for c in client.models.generate_content_stream(model="gemini-2.5-pro", contents="Explain")
    ]
    assert "".join(parts) == "nonce gem says hello"
    plain, streamed = new_rows()
    assert_row(plain, "gemini", GEMINI_ROW, GEMINI_COST, streamed=0, model_requested="gemini-2.5-pro")
    assert_row(streamed, "gemini", GEMINI_ROW, GEMINI_COST, streamed=1, model_served="gemini-2.5-pro")
    assert plain["endpoint"].endswith(":generateContent") and streamed["endpoint"].endswith(
        ":streamGenerateContent"
    )


def test_gemini_json_array_stream_without_sse(meter, new_rows):
    """streamGenerateContent without alt=sse streams one JSON array, element by element."""
    url = f"{base_url(meter, 'gemini')}/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    with (
        plain_client() as client,
        client.stream("POST", url, json={"contents": [{"parts": [{"text": "hi"}]}]}) as response,
    ):
        assert response.headers["content-type"].startswith("application/json")
        raw = b"".join(response.iter_raw())
    assert raw.startswith(b"[") and raw.endswith(b"]")
    (row,) = new_rows()
    assert_row(row, "gemini", GEMINI_ROW, GEMINI_COST, streamed=1)


@pytest.mark.parametrize("mode", MODES)
def test_xai_httpx(mode, meter, meter_ca, new_rows):
    url = xai_url(mode, meter)
    body = {"model": "grok-4-0709", "messages": [{"role": "user", "content": "101*3?"}]}
    headers = {"authorization": "Bearer xai-test"}
    with xai_http(mode, meter, meter_ca) as client:
        plain = client.post(url, json=body, headers=headers)
        assert plain.status_code == 200 and plain.json()["usage"]["cost_in_usd_ticks"] == 37756000
        with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as streamed:
            raw = b"".join(streamed.iter_raw())
    assert raw.endswith(b"data: [DONE]\n\n")
    plain_row, stream_row = new_rows()
    assert_row(plain_row, "xai", XAI_ROW, XAI_COST, streamed=0)
    assert_row(stream_row, "xai", XAI_ROW, XAI_COST, streamed=1)
    assert plain_row["price_card"].startswith("provider-billed")


def test_user_path_with_environment_variables(meter, new_rows, monkeypatch):
    """What the docs tell users: HTTPS_PROXY plus the meter's CA bundle, and a stock SDK client."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{meter.listen[1]}")
    monkeypatch.setenv("SSL_CERT_FILE", str(meter.settings.paths.ca_bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    (row,) = new_rows()
    assert_row(row, "anthropic", ANTHROPIC_ROW, ANTHROPIC_COST)


# -- batch results: one row per batched request, at the batch rate ---------------------------------------

# claude-sonnet-4-5 at the batch rate (50% off), per result line (the fakes' ANTHROPIC_TOKENS).
ANTHROPIC_BATCH_COST = ANTHROPIC_COST / 2
# gpt-4o through the Batch API: $1.25 input, $5 output; cached input has no batch discount of its own
# (OpenAI lists none), so the 64 cached tokens cost the batch input rate too.
OPENAI_BATCH_COST = (136 * Decimal("1.25") + 64 * Decimal("1.25") + 50 * Decimal(5)) / 10**6


def batch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of batched requests among ``rows``: the only rows the meter did not see run (no latency)."""
    return [r for r in rows if r["batch"] == 1 and r["latency_ms"] is None]


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_batch_results_are_recorded_per_request(mode, meter, meter_ca, new_rows, fakes):
    client = anthropic_client(mode, meter, meter_ca)
    params = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    ids = ["a", "b-us", "errored-c", "canceled-d", "expired-e"]
    created = client.messages.batches.create(requests=[{"custom_id": i, "params": params} for i in ids])
    batch = client.messages.batches.retrieve(created.id)
    # The SDK is handed a results URL the meter serves, whichever way it came in.
    expected_base = base_url(meter, "anthropic") if mode == "base_url" else "https://api.anthropic.com"
    assert batch.results_url == f"{expected_base}/v1/messages/batches/{created.id}/results"
    results = {r.custom_id: r for r in client.messages.batches.results(created.id)}
    assert results["a"].result.type == "succeeded" and results["expired-e"].result.type == "expired"

    rows = new_rows()
    batched = batch_rows(rows)
    assert len(batched) == len(ids)
    by_id = {r["provider_request_id"]: r for r in batched if r["status_code"] == 200}
    for index, custom_id in ((0, "a"), (1, "b-us")):
        row = by_id[f"msg_{created.id}_{index}"]
        assert_row(
            row,
            "anthropic",
            ANTHROPIC_ROW,
            ANTHROPIC_BATCH_COST,
            timed=False,
            endpoint="/v1/messages",
            batch=1,
        )
        assert row["model_served"] == "claude-sonnet-4-5" and row["streamed"] == 0
        assert row["region"] == ("us" if custom_id == "b-us" else "global")
    failed = sorted(r["status_code"] for r in batched if r["status_code"] != 200)
    assert failed == [400, 408, 499]  # errored (invalid_request_error), expired, canceled
    for row in batched:
        if row["status_code"] != 200:
            assert row["input_tokens"] is None and row["output_tokens"] is None
    download = [r for r in rows if r["endpoint"] == "/v1/messages/batches/{batch_id}/results"]
    assert len(download) == 1 and download[0]["parse_errors"] == 0

    # Downloading the results again records nothing new: the only new row is the SDK's retrieve before it.
    list(client.messages.batches.results(created.id))
    (added,) = new_rows()[len(rows) :]
    assert added["endpoint"] == "/v1/messages/batches/{batch_id}"


@pytest.mark.parametrize("mode", MODES)
def test_openai_batch_output_files_are_recorded_per_request(mode, meter, meter_ca, new_rows):
    client = openai_client(mode, meter, meter_ca)
    lines = [
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}
        for custom_id in ("one", "two", "errored-three", "expired-four")
    ]  # fmt: skip
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    uploaded = client.files.create(file=("input.jsonl", content), purpose="batch")
    created = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = client.batches.retrieve(created.id)
    output = client.files.content(batch.output_file_id).content
    errors = client.files.content(batch.error_file_id).content
    assert output.count(b"\n") == 2 and errors.count(b"\n") == 2
    # The input file is an ordinary file: its download is not a batch output.
    assert client.files.content(uploaded.id).content == content

    rows = new_rows()
    batched = batch_rows(rows)
    assert len(batched) == 4
    succeeded = sorted(
        (r for r in batched if r["status_code"] == 200), key=lambda r: r["provider_request_id"]
    )
    for row in succeeded:
        assert_row(
            row,
            "openai",
            OPENAI_ROW,
            OPENAI_BATCH_COST,
            timed=False,
            endpoint="/v1/chat/completions",
            batch=1,
        )
    assert [r["provider_request_id"] for r in succeeded] == [
        f"chatcmpl-batch_req_{created.id}_0",
        f"chatcmpl-batch_req_{created.id}_1",
    ]
    failed = sorted((r["status_code"], r["endpoint"]) for r in batched if r["status_code"] != 200)
    # An error file does not say which endpoint its batch ran: the batch API's own.
    assert failed == [(400, "/v1/batches"), (408, "/v1/batches")]
    downloads = [r for r in rows if r["endpoint"] == "/v1/files/{file_id}/content"]
    assert len(downloads) == 3 and all(r["parse_errors"] == 0 for r in downloads)

    client.files.content(batch.output_file_id)
    client.files.content(uploaded.id)
    again = new_rows()
    assert batch_rows(again) == batched  # nothing new from the output file downloaded again
    assert len([r for r in again if r["endpoint"] == "/v1/files/{file_id}/content"]) == 4  # the input file's


@pytest.mark.parametrize("mode", MODES)
def test_garbage_batch_results_reach_the_client_untouched(mode, meter, meter_ca, new_rows, fakes):
    client = anthropic_client(mode, meter, meter_ca)
    params = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    created = client.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    results_url = client.messages.batches.retrieve(created.id).results_url
    http = plain_client() if mode == "base_url" else proxied_client(meter, meter_ca)
    n = nonce()
    with http:
        garbage = http.get(
            results_url, headers={"x-fake-scenario": "garbage", "x-fake-nonce": n, "x-api-key": "k"}
        )
        file = openai_client(mode, meter, meter_ca).files.with_raw_response.content(
            "file-none", extra_headers={"x-fake-scenario": "garbage"}
        )
    assert garbage.status_code == 200 and garbage.content == fakes.anthropic.sent[n]
    assert file.http_response.content == garbage.content
    rows = new_rows()
    assert batch_rows(rows) == []
    (download,) = [r for r in rows if r["endpoint"] == "/v1/messages/batches/{batch_id}/results"]
    assert download["parse_errors"] >= 1 and download["status_code"] == 200
    # The meter goes on metering.
    client.messages.create(**params)
    assert_row(new_rows()[-1], "anthropic", ANTHROPIC_ROW, ANTHROPIC_COST)


# -- what goes wrong ---------------------------------------------------------------------------------


def test_truncated_stream_is_recorded_incomplete(meter, new_rows):
    client = anthropic_client("base_url", meter, None)
    with (
        pytest.raises((anthropic.APIError, httpx.HTTPError)),
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-scenario": "truncate"},
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    (row,) = new_rows()
    assert row["status_code"] == 200 and row["streamed"] == 1
    assert row["complete"] == 0
    assert row["input_tokens"] == 160  # message_start was seen before the cut
    assert row["cache_read_tokens"] == 30
    assert row["error"]


def test_malformed_sse_line_is_counted_and_usage_still_read(meter, new_rows, fakes):
    # Raw httpx: the OpenAI SDK itself raises on the broken line; the meter must forward it as is.
    n = nonce()
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with (
        plain_client() as client,
        client.stream(
            "POST",
            f"{base_url(meter, 'openai/v1')}/chat/completions",
            json=body,
            headers={"x-fake-scenario": "malformed", "x-fake-nonce": n},
        ) as response,
    ):
        raw = b"".join(response.iter_raw())
    assert b"data: {this is not json" in raw and raw == fakes.openai.sent[n]
    (row,) = new_rows()
    assert_row(row, "openai", OPENAI_ROW, OPENAI_COST, streamed=1)
    assert row["parse_errors"] == 1


@pytest.mark.parametrize("status", [429, 500, 529])
def test_provider_errors_are_recorded_with_their_status_at_a_known_zero(status, meter, new_rows):
    client = anthropic_client("base_url", meter, None)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-scenario": str(status)},
        )
    assert raised.value.status_code == status
    (row,) = new_rows()
    # Nothing was served: every token count is unknown (NULL), none is 0.
    assert row["status_code"] == status
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ):
        assert row[name] is None, name
    # The provider bills nothing for an error without usage: a known $0, not an unknown.
    assert row["cost_nusd"] == 0 and row["unpriced_reason"] is None
    assert f"HTTP {status}, not billed" in row["price_card"]
    assert row["model_requested"] == "claude-sonnet-4-5"


def test_ten_megabyte_request_body(meter, new_rows, fakes):
    prompt = "x" * (10 * 1024 * 1024)
    body = json.dumps(
        {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": prompt}]}
    ).encode()
    with plain_client() as client:
        response = client.post(
            f"{base_url(meter, 'anthropic')}/v1/messages",
            content=body,
            headers={"content-type": "application/json", "x-api-key": "k"},
        )
    assert response.status_code == 200
    received = fakes.anthropic.requests[-1]
    assert received["body_bytes"] == len(body) and received["body_sha256"] == hashlib.sha256(body).hexdigest()
    (row,) = new_rows()
    assert_row(row, "anthropic", ANTHROPIC_ROW, ANTHROPIC_COST)
    assert row["prompt_hash"]


def test_unknown_model_is_unpriced_not_free(meter, new_rows):
    client = openai_client("base_url", meter, None)
    client.chat.completions.create(model="gpt-imaginary-9", messages=[{"role": "user", "content": "hi"}])
    (row,) = new_rows()
    assert row["input_tokens"] == 200 and row["output_tokens"] == 50
    assert row["cost_nusd"] is None
    assert "gpt-imaginary-9" in row["unpriced_reason"]


def test_unknown_endpoint_is_recorded_without_tokens(meter, new_rows):
    client = anthropic_client("base_url", meter, None)
    models = client.models.list()
    assert models.data[0].id == "claude-sonnet-4-5"
    (row,) = new_rows()
    assert row["endpoint"] == "/v1/models" and row["status_code"] == 200
    assert row["input_tokens"] is None and row["output_tokens"] is None and row["cost_nusd"] is None


def test_gzip_json_reaches_the_client_untouched_and_is_read(meter, new_rows, fakes):
    n = nonce()
    with plain_client() as client:
        response = client.post(
            f"{base_url(meter, 'openai/v1')}/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-fake-scenario": "gzip", "x-fake-nonce": n, "accept-encoding": "gzip"},
        )
        assert response.headers["content-encoding"] == "gzip"
        assert response.json()["id"] == f"chatcmpl-{n}"
    (row,) = new_rows()
    assert_row(row, "openai", OPENAI_ROW, OPENAI_COST)


def test_project_header_is_used_and_stripped_before_upstream(meter, meter_ca, new_rows, fakes):
    client = anthropic_client("proxy", meter, meter_ca)
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=8,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Halton-Project": "checkout"},
    )
    (row,) = new_rows()
    assert row["project"] == "checkout" and row["attribution_tier"] == "header"
    forwarded = fakes.anthropic.requests[-1]["headers"]
    assert "x-halton-project" not in forwarded
    assert forwarded["x-api-key"] == "sk-ant-test"


# -- concurrency, fail-open, tunnelling ----------------------------------------------------------------


def test_one_hundred_concurrent_streams_all_recorded_none_altered(meter, meter_ca, new_rows, fakes):
    async def one(client: httpx.AsyncClient, i: int) -> tuple[str, bytes]:
        n = f"c{i:03d}-{nonce()}"
        url = (
            f"{base_url(meter, 'openai/v1')}/chat/completions"
            if i % 2
            else "https://api.openai.com/v1/chat/completions"
        )
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": n}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with client.stream(
            "POST", url, json=body, headers={"x-fake-nonce": n, "x-fake-scenario": "slow"}
        ) as response:
            assert response.status_code == 200
            return n, b"".join([chunk async for chunk in response.aiter_raw()])

    async def main() -> list[tuple[str, bytes]]:
        limits = httpx.Limits(max_connections=200)
        async with (
            httpx.AsyncClient(trust_env=False, timeout=60, limits=limits) as direct,
            httpx.AsyncClient(
                proxy=f"http://127.0.0.1:{meter.listen[1]}",
                verify=meter_ca,
                trust_env=False,
                timeout=60,
                limits=limits,
            ) as proxied,
        ):
            return await asyncio.gather(*(one(direct if i % 2 else proxied, i) for i in range(100)))

    results = asyncio.run(main())
    for n, received in results:
        assert received == fakes.openai.sent[n], f"stream {n} was altered"
    rows = new_rows()
    assert len(rows) == 100
    assert {r["provider_request_id"] for r in rows} == {f"chatcmpl-{n}" for n, _ in results}
    for row in rows:
        assert_row(row, "openai", OPENAI_ROW, OPENAI_COST, streamed=1)


class RaisingParser:
    """A parser that blows up on the first chunk: the proxy must not care."""

    def __init__(self) -> None:
        from halton_meter.usage import Usage

        self.usage = Usage()

    def feed(self, chunk: bytes) -> None:
        raise RuntimeError("injected parser failure")

    def finish(self):
        return self.usage


def test_proxy_survives_a_parser_that_raises(meter, new_rows, fakes):
    errors_before = meter.health.errors().get("capture.stream", 0)
    meter.capture.parser_for = lambda *args: RaisingParser()
    try:
        n = nonce()
        with (
            plain_client() as client,
            client.stream(
                "POST",
                f"{base_url(meter, 'openai/v1')}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
                headers={"x-fake-nonce": n},
            ) as response,
        ):
            raw = b"".join(response.iter_raw())
        (row,) = new_rows()
    finally:
        from halton_meter import providers

        meter.capture.parser_for = providers.parser_for
    assert raw == fakes.openai.sent[n]
    assert meter.health.errors()["capture.stream"] == errors_before + 1
    assert row["status_code"] == 200 and row["complete"] == 0 and row["cost_nusd"] is None
    assert row["error"]


@pytest.mark.parametrize("stage", ["request", "responseheaders", "chunk", "finish"])
def test_proxy_survives_a_failure_at_any_capture_stage(stage, meter, new_rows, fakes):
    def fault(at: str) -> None:
        if at == stage:
            raise RuntimeError(f"injected failure at {at}")

    meter.capture.fault = fault
    try:
        n = nonce()
        with plain_client() as client:
            response = client.post(
                f"{base_url(meter, 'anthropic')}/v1/messages",
                json={
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                headers={"x-fake-nonce": n, "x-api-key": "k"},
            )
        assert response.status_code == 200 and response.content == fakes.anthropic.sent[n]
        (row,) = new_rows()  # waits for the flow to end, so the fault is still armed at "finish"
    finally:
        meter.capture.fault = None
    assert row["provider"] == "anthropic" and row["status_code"] == 200
    assert row["error"]  # the row says capture had a problem
    assert meter.health.errors()


def test_non_provider_https_is_tunnelled_untouched(meter, new_rows, fakes):
    """The client sees the real server's certificate: the meter never decrypted this connection."""
    with socket.create_connection(("127.0.0.1", meter.listen[1]), timeout=10) as raw:
        raw.sendall(
            f"CONNECT localhost:{fakes.other.port} HTTP/1.1\r\nHost: localhost:{fakes.other.port}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        with fakes.pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            served = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    assert served == ssl.PEM_cert_to_DER_cert(fakes.pki.cert_path.read_text())
    assert b"from a host the meter does not meter" in reply
    assert new_rows() == []


def test_loopback_api_answers_on_the_proxy_port(meter):
    with plain_client() as client:
        health = client.get(f"http://127.0.0.1:{meter.listen[1]}/v1/health").json()
        missing = client.get(f"http://127.0.0.1:{meter.listen[1]}/nope")
    assert health["ok"] is True and health["listen"].endswith(str(meter.listen[1]))
    assert missing.status_code == 404 and "/anthropic" in missing.json()["hint"]
