"""The incremental SSE decoder: any chunking, any line ending, comments, multi-line data, bad lines."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halton_meter.providers.sse import SseDecoder, SseEvent

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n'
    b"\n"
    b"data: first line\n"
    b"data: second line\n"
    b"id: 7\n"
    b"\n"
    b"event: done\n"
    b"data:no-space\n"
    b"\n"
)
EXPECTED = [
    SseEvent(event="message_start", data='{"type":"message_start"}'),
    SseEvent(event="message", data="first line\nsecond line", id="7"),
    SseEvent(event="done", data="no-space", id="7"),
]


def decode(chunks: list[bytes]) -> tuple[list[SseEvent], int]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.finish()
    return events, decoder.parse_errors


def test_whole_stream_in_one_chunk() -> None:
    assert decode([STREAM]) == (EXPECTED, 0)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert decode(chunks) == (EXPECTED, 0)


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_random_split_points_and_line_endings(cuts: list[int], newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    chunks = [stream[a:b] for a, b in pairwise(bounds)]
    assert decode(chunks) == (EXPECTED, 0)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_lone_cr_line_endings(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    assert decode([stream]) == (EXPECTED, 0)
    # Byte by byte, so a CRLF pair is split across chunks.
    assert decode([stream[i : i + 1] for i in range(len(stream))]) == (EXPECTED, 0)


def test_crlf_split_between_chunks_does_not_make_an_empty_line() -> None:
    events, errors = decode([b"data: a\r", b"\ndata: b\r\n\r\n"])
    assert events == [SseEvent(event="message", data="a\nb")]
    assert errors == 0


def test_malformed_line_is_counted_and_the_rest_still_parses() -> None:
    stream = b'data: {"n":1}\n\n{"garbage without a field\n\ndata: {"n":2}\n\n'
    events, errors = decode([stream])
    assert [e.data for e in events] == ['{"n":1}', '{"n":2}']
    assert errors == 1


def test_non_utf8_line_is_counted_and_skipped() -> None:
    events, errors = decode([b"data: ok\n\ndata: \xff\xfe\n\ndata: fine\n\n"])
    assert [e.data for e in events] == ["ok", "fine"]
    assert errors == 1


def test_utf8_character_split_across_chunks() -> None:
    payload = "data: café ☕\n\n".encode()
    split_inside = payload.index("☕".encode()) + 1
    events, errors = decode([payload[:split_inside], payload[split_inside:]])
    assert events == [SseEvent(event="message", data="café ☕")]
    assert errors == 0


def test_bom_at_the_start_is_ignored() -> None:
    assert decode([b"\xef\xbb", b"\xbfdata: x\n\n"]) == ([SseEvent(event="message", data="x")], 0)


def test_truncated_stream_keeps_complete_events_and_drops_the_half_line() -> None:
    events, errors = decode([b"data: one\n\ndata: tw"])
    assert events == [SseEvent(event="message", data="one")]
    assert errors == 0


def test_event_without_final_blank_line_is_dispatched_at_the_end() -> None:
    assert decode([b"data: [DONE]\n"]) == ([SseEvent(event="message", data="[DONE]")], 0)


def test_event_with_no_data_is_not_dispatched() -> None:
    assert decode([b"event: ping\n\n: comment only\n\n"]) == ([], 0)


def test_memory_is_bounded_by_one_event() -> None:
    decoder = SseDecoder(max_event_bytes=100)
    events = decoder.feed(b"data: " + b"x" * 500 + b"\n\n" + b"data: small\n\n")
    assert [e.data for e in events] == ["small"]
    assert decoder.parse_errors == 1
    # An over-long line arriving in pieces is dropped without keeping it.
    decoder = SseDecoder(max_event_bytes=100)
    for _ in range(20):
        decoder.feed(b"y" * 50)
        assert len(decoder._buffer) <= 150
    assert [e.data for e in decoder.feed(b"\n\ndata: after\n\n")] == ["after"]
    assert decoder.parse_errors == 1
