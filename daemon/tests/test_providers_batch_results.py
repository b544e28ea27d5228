"""Batch results downloads: Anthropic results and OpenAI output files, one result per line, never raising."""

from __future__ import annotations

import gzip
import json

import pytest

from halton_meter.batch_links import point_results_at
from halton_meter.providers import parser_for, read_request
from halton_meter.providers.batch_results import (
    CANCELED_STATUS,
    EXPIRED_STATUS,
    MAX_LINE_BYTES,
    BatchResultsParser,
    result_uid,
)
from halton_meter.testing import factories as f

RESULTS = "/v1/messages/batches/msgbatch_01/results"
CONTENT = "/v1/files/file-abc/content"


def anthropic_parser(path: str = RESULTS, status: int = 200):
    return parser_for(read_request("anthropic", "GET", path, {}, b""), status, "application/binary")


def openai_parser(path: str = CONTENT):
    return parser_for(read_request("openai", "GET", path, {}, b""), 200, "application/octet-stream")


def run(parser, chunks):
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(), parser.results


def anthropic_results() -> bytes:
    message = f.anthropic_message(
        model="claude-sonnet-4-5", input_tokens=120, output_tokens=45, cache_read=30, cache_write_5m=10,
        message_id="msg_1", inference_geo="us",
    )  # fmt: skip
    return b"".join(
        [
            f.anthropic_batch_result("first", f.anthropic_batch_succeeded(message)),
            f.anthropic_batch_result("second", f.anthropic_batch_errored("overloaded_error")),
            f.anthropic_batch_result("third", {"type": "canceled"}),
            f.anthropic_batch_result("fourth", {"type": "expired"}),
        ]
    )


def test_only_successful_results_downloads_get_the_results_parser() -> None:
    assert isinstance(anthropic_parser(), BatchResultsParser)
    assert isinstance(openai_parser(), BatchResultsParser)
    assert not isinstance(anthropic_parser(status=404), BatchResultsParser)
    assert not isinstance(anthropic_parser("/v1/messages/batches/msgbatch_01"), BatchResultsParser)
    assert read_request("anthropic", "GET", RESULTS, {}, b"").resource_id == "msgbatch_01"
    assert read_request("openai", "GET", "/openai/v1/files/file-x/content", {}, b"").resource_id == "file-x"


def test_anthropic_results_one_per_line_with_status_and_tokens() -> None:
    usage, results = run(anthropic_parser(), [anthropic_results()])
    assert usage.parse_errors == 0 and usage.complete and usage.input_tokens is None
    first, second, third, fourth = results
    assert first.request_uid == result_uid("anthropic", "msgbatch_01", "first")
    assert (first.endpoint, first.status_code, first.error) == ("/v1/messages", 200, None)
    assert (first.usage.input_tokens, first.usage.output_tokens) == (160, 45)
    assert (first.usage.cache_read_tokens, first.usage.cache_write_tokens) == (30, 10)
    assert first.usage.model_served == "claude-sonnet-4-5" and first.usage.provider_request_id == "msg_1"
    assert first.usage.region == "us"
    assert [r.status_code for r in (second, third, fourth)] == [529, CANCELED_STATUS, EXPIRED_STATUS]
    for failed in (second, third, fourth):
        assert failed.usage.input_tokens is None and failed.usage.output_tokens is None and failed.error


def test_lines_split_anywhere_give_the_same_results() -> None:
    body = anthropic_results()
    _, whole = run(anthropic_parser(), [body])
    _, bytewise = run(anthropic_parser(), f.byte_chunks(body, 1))
    _, gzipped = run(anthropic_parser(), f.byte_chunks(gzip.compress(body), 7))
    assert bytewise == whole and gzipped == whole


def test_the_same_results_get_the_same_uids_and_another_batch_others() -> None:
    _, once = run(anthropic_parser(), [anthropic_results()])
    _, twice = run(anthropic_parser(), [anthropic_results()])
    _, other = run(anthropic_parser("/v1/messages/batches/msgbatch_02/results"), [anthropic_results()])
    assert [r.request_uid for r in once] == [r.request_uid for r in twice]
    assert not {r.request_uid for r in once} & {r.request_uid for r in other}


def test_garbage_lines_are_counted_and_the_good_ones_kept() -> None:
    body = b"not json\n" + anthropic_results() + b'{"custom_id": "x"}\n\x00\xff\n[1,2]'
    usage, results = run(anthropic_parser(), [body])
    assert len(results) == 4 and usage.parse_errors == 4


def test_a_line_too_long_is_skipped_and_counted() -> None:
    body = b'{"custom_id": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n' + anthropic_results()
    usage, results = run(anthropic_parser(), f.byte_chunks(body, 1 << 20))
    assert len(results) == 4 and usage.parse_errors == 1


def openai_output() -> bytes:
    chat = f.openai_chat_completion(model="gpt-4o", prompt_tokens=200, completion_tokens=50, cached_tokens=64)
    expired = {"code": "batch_expired", "message": "expired"}
    return b"".join(
        [
            f.openai_batch_output("batch_req_1", "one", 200, chat),
            f.openai_batch_output("batch_req_2", "two", 400, f.openai_error("bad", "invalid_request_error")),
            f.openai_batch_output("batch_req_3", "three", None, None, expired),
        ]
    )


def test_openai_output_file_one_result_per_line() -> None:
    usage, results = run(openai_parser(), [openai_output()])
    assert usage.parse_errors == 0
    one, two, three = results
    assert one.request_uid == result_uid("openai", "file-abc", "one")
    assert (one.endpoint, one.status_code) == ("/v1/chat/completions", 200)
    assert (one.usage.input_tokens, one.usage.cache_read_tokens, one.usage.output_tokens) == (200, 64, 50)
    # The other lines do not say their endpoint: the batch ran one, which the first line shows.
    assert (two.endpoint, two.status_code, two.usage.provider_request_id) == (
        "/v1/chat/completions", 400, "req_batch_req_2",
    )  # fmt: skip
    assert (three.endpoint, three.status_code, three.usage.input_tokens) == (
        "/v1/chat/completions", EXPIRED_STATUS, None,
    )  # fmt: skip


def test_openai_embeddings_and_responses_outputs_name_their_endpoint() -> None:
    embedding = f.openai_batch_output("r1", "e", 200, f.openai_embedding(model="text-embedding-3-small"))
    response = f.openai_batch_output("r2", "r", 200, f.openai_response(input_tokens=9, output_tokens=3))
    _, results = run(openai_parser(), [embedding + response])
    assert [r.endpoint for r in results] == ["/v1/embeddings", "/v1/responses"]
    assert (results[0].usage.output_tokens, results[1].usage.input_tokens) == (0, 9)


@pytest.mark.parametrize(
    "content",
    [
        b"id,name\n1,alice\n",  # a CSV
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}).encode()
        + b"\n",  # a batch INPUT file
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode() + b"\n",  # fine-tuning data
        bytes(range(256)) * 100,  # binary
    ],
)
def test_an_ordinary_file_is_not_a_batch_output_and_not_an_error(content: bytes) -> None:
    usage, results = run(openai_parser(), f.byte_chunks(content, 97))
    assert results == [] and usage.parse_errors == 0


def test_a_file_that_stops_being_a_batch_output_records_nothing() -> None:
    _, results = run(openai_parser(), [openai_output() + b"id,name\n"])
    assert results == []


def test_results_url_is_pointed_at_the_client_base_and_nothing_else_changes() -> None:
    body = (
        b'{"id": "msgbatch_01", "results_url": "https://127.0.0.1:8443/gw/v1/messages/batches/msgbatch_01/results",'
        b' "note": "results_url"}'
    )
    moved = point_results_at(body, "http://127.0.0.1:8090/anthropic", "/gw", {("127.0.0.1", 8443)})
    assert moved == body.replace(b"https://127.0.0.1:8443/gw/v1", b"http://127.0.0.1:8090/anthropic/v1")
    public = b'{"results_url":"https://api.anthropic.com/v1/messages/batches/b/results"}'
    hosts = {("api.anthropic.com", 443)}
    assert point_results_at(public, "https://api.anthropic.com", "", hosts) == public
    assert point_results_at(public, "http://127.0.0.1:1/anthropic", "", hosts) == (
        b'{"results_url":"http://127.0.0.1:1/anthropic/v1/messages/batches/b/results"}'
    )
    elsewhere = b'{"results_url": "https://cdn.example.com/r.jsonl", "list": [{"results_url": null}]}'
    assert point_results_at(elsewhere, "http://127.0.0.1:1/anthropic", "", hosts) == elsewhere
