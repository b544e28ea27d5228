"""The fast batch decoder takes a body only if pydantic's RequestBatch takes it, with the same values.

`decode_batch` may refuse more than pydantic (the router then validates with pydantic), never accept more:
every case here checks "accepted fast => pydantic accepts, and every field is equal".
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from halton_api.batch_decoding import WireBatch, WireRow, decode_batch, from_model
from halton_api.ingest_window import IngestWindow
from halton_api.routers.ingest_routes import BatchRejected, parse_batch
from halton_api.testing.factories import batch, row
from halton_meter.protocol import MAX_DURATION_MS, MAX_TOKENS, RequestBatch, RequestRow

# The server's clock for every parse here: the edge rows below start a minute before it.
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
WINDOW = IngestWindow(
    earliest=datetime(2020, 1, 1, tzinfo=UTC), max_ahead=timedelta(days=1), clock=lambda: NOW
)

# Values to put in one field of an otherwise valid row: valid, invalid, and ones only pydantic's lax
# mode accepts. Times are paired with the row's other time by `_with`.
EDGE_VALUES: dict[str, list[Any]] = {
    "request_uid": [
        "6fa459ea-ee8a-3ca4-894e-db77e160355e",
        "6FA459EAEE8A3CA4894EDB77E160355E",
        "{6fa459ea-ee8a-3ca4-894e-db77e160355e}",
        "urn:uuid:6fa459ea-ee8a-3ca4-894e-db77e160355e",
        "6fa459ea-ee8a3ca4-894e-db77e160355e",
        "",
        None,
        12,
    ],
    "machine_id": ["m", "", "x" * 128, "x" * 129, "é" * 128, "a\x00b", None, 5],
    "started_at": [
        "2026-03-01T10:00:00Z",
        "2026-03-01t10:00:00z",
        "2026-03-01 10:00:00+00:00",
        "2026-03-01T10:00:00",
        "2026-03-01T10:00:00.123456Z",
        "2026-03-01T10:00:00.9999995Z",
        "2026-03-01T10:00:00.1234567+01:00",
        "2026-03-01T10:00:00,5Z",
        "2026-03-01T10:00Z",
        "2026-03-01",
        "2026-03-01T23:59:60Z",
        "2026-03-01T10:00:00-00:00",
        "2026-03-01T10:00:00+23:59",
        "2026-03-01T10:00:00+0100",
        1772359200,
        "yesterday",
        None,
        # Far off, and the ingestion window's edges: both decoders read them alike; the window (checked after
        # either) refuses those outside it.
        "0001-01-01T00:00:00+01:00",
        "1899-12-31T23:59:59Z",
        "2019-12-31T23:59:59.999Z",
        "2020-01-01T00:00:00Z",
        "2026-03-02T10:00:00Z",
        "2026-03-02T10:00:00.001Z",
        "2200-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
    ],
    "provider": ["anthropic", "xai", "Anthropic", "mistral", "", None],
    "model_requested": [None, "", "m" * 256, "m" * 257],
    "endpoint": ["/v1/messages", "", "e" * 512, "e" * 513, None],
    "status_code": [200, 0, 999, 1000, -1, "200", 200.0, 200.5, True, None],
    "streamed": [True, False, 1, "true", None],
    "service_tier": [None, "priority", "s" * 65],
    "input_tokens": [0, 10**12, 10**12 + 1, -1, "12", 12.0, 1e3, None, 2**70],
    "cache_read_tokens": [0, 199, 10_000, None, "5"],
    "reasoning_tokens": [0, 300, 301, None],
    "cost_usd": [
        "0.012300000",
        "0.0123000000",
        "0.0000000001",
        0.0123,
        1e5,
        "1e5",
        "999999999.999999999",
        "1000000000",
        "-0",
        "-0.01",
        "NaN",
        "Infinity",
        "1E400",
        " 1.0",
        "1_000",
        None,
        True,
    ],
    "project": ["acme/app", "a", "a" * 128, "a" * 129, "acme/app\n", "-acme", "acme app", "", None],
    "attribution_tier": ["header", "directory", "HEADER", "none"],
    "prompt_hash": [None, "h" * 128, "h" * 129],
    "latency_ms": [0, 2**31, MAX_DURATION_MS, MAX_DURATION_MS + 1, 2**63, 2**64, -5, None],
    "ttfb_ms": [0, MAX_DURATION_MS, MAX_DURATION_MS + 1, "5", -1, None],
    "output_tokens": [0, MAX_TOKENS, MAX_TOKENS + 1, None],
}


def _with(field: str, value: Any) -> dict[str, Any]:
    data = row("m", started_at=_at("2026-03-01T09:59:00+00:00"))
    data[field] = value
    if field == "started_at" and isinstance(value, str):
        data["ended_at"] = value  # equal times are valid; keeps ended_at >= started_at when it parses
    return data


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _body(rows: list[dict[str, Any]], **envelope: Any) -> bytes:
    return json.dumps(
        {"schema_version": 1, "batch_id": "0b7f3c4e-58d4-4f0c-9a55-5bd4a1d8f3a1", "rows": rows, **envelope}
    ).encode()


def _agrees(body: bytes) -> WireBatch | None:
    """decode_batch's answer, after checking it against pydantic's."""
    fast = decode_batch(body)
    try:
        model = RequestBatch.model_validate_json(body)
    except ValidationError:
        assert fast is None, f"accepted fast but pydantic refuses: {body[:300]!r}"
        return None
    if fast is not None:
        assert fast.batch_id == model.batch_id and fast.schema_version == model.schema_version
        assert len(fast.rows) == len(model.rows)
        for wire, reference in zip(fast.rows, model.rows, strict=True):
            for name in RequestRow.model_fields:
                assert getattr(wire, name) == getattr(reference, name), (name, body[:300])
    return fast


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in EDGE_VALUES.items() for v in values], ids=repr
)
def test_one_field_at_its_edges(field: str, value: Any) -> None:
    _agrees(_body([_with(field, value)]))


@pytest.mark.parametrize(
    ("first", "second"), list(itertools.product(EDGE_VALUES["cost_usd"], repeat=2)), ids=repr
)
def test_costs_are_checked_across_the_batch(first: Any, second: Any) -> None:
    """The costs are checked for the batch at once (`_costs_fit`): every pair agrees with pydantic."""
    _agrees(_body([_with("cost_usd", first), _with("cost_usd", second)]))


def test_one_cost_past_nine_decimals_among_large_ones_is_refused() -> None:
    """The batch's costs near their bound, summed, still show one tenth of a nano-dollar."""
    rows = [_with("cost_usd", "999999999.999999999") for _ in range(999)]
    assert _agrees(_body(rows)) is not None
    assert _agrees(_body([*rows, _with("cost_usd", "0.0000000001")])) is None


def test_a_meters_batch_takes_the_fast_path() -> None:
    data = batch("m", rows=50)
    decoded = _agrees(json.dumps(data).encode())
    assert decoded is not None and len(decoded.rows) == 50


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"batch_id": "0b7f3c4e-58d4-4f0c-9a55-5bd4a1d8f3a1", "rows": []}',
        _body([row("m")], schema_version=2),
        _body([row("m")], schema_version=1.0),
        _body([row("m")], extra=True),
        _body([{**row("m"), "prompt_text": "hello"}]),  # unknown fields are refused, never dropped
        _body([{k: v for k, v in row("m").items() if k != "endpoint"}]),
        _body([row("m", ended_at="2026-01-01T00:00:00Z")]),  # ends before it starts
        _body([row("m", input_tokens=10, cache_read_tokens=6, cache_write_tokens=5)]),
        _body([row("m", output_tokens=10, reasoning_tokens=11)]),
        _body([row("m")])[:-5],
        _body([row("m")]).replace(
            b'"provider": "anthropic"', b'"provider": "openai", "provider": "anthropic"'
        ),
    ],
    # Named, not repr'd: the rows carry fresh ids and times, and test ids must be the same in every
    # process that collects them (pytest-xdist's workers compare their collections).
    ids=[
        "empty",
        "a-list",
        "no-fields",
        "no-schema-version",
        "schema-version-2",
        "schema-version-float",
        "extra-envelope-field",
        "unknown-row-field",
        "missing-endpoint",
        "ends-before-it-starts",
        "cache-tokens-exceed-input",
        "reasoning-exceeds-output",
        "truncated-json",
        "duplicate-key",
    ],
)
def test_envelopes_and_validators(body: bytes) -> None:
    _agrees(body)


# Generated rows: each field from its edge values or absent, in any combination.
_rows = st.lists(
    st.fixed_dictionaries(
        {},
        optional={field: st.sampled_from(values) for field, values in EDGE_VALUES.items()},
    ).map(lambda changes: {**row("m", started_at=_at("2026-03-01T09:59:00+00:00")), **changes}),
    min_size=1,
    max_size=3,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows)
def test_generated_batches(rows: list[dict[str, Any]]) -> None:
    _agrees(_body(rows))


def test_every_value_at_its_columns_bound_takes_the_fast_path() -> None:
    """The largest row the protocol allows: every number at the top of its column's range."""
    largest = row(
        "m",
        started_at=_at("2026-03-01T09:59:00+00:00"),
        status_code=999,
        input_tokens=MAX_TOKENS,
        cache_read_tokens=MAX_TOKENS // 2,
        cache_write_tokens=MAX_TOKENS // 4,
        cache_write_1h_tokens=MAX_TOKENS // 4,
        output_tokens=MAX_TOKENS,
        reasoning_tokens=MAX_TOKENS,
        cost_usd="999999999.999999999",
        latency_ms=MAX_DURATION_MS,
        ttfb_ms=MAX_DURATION_MS,
    )
    assert _agrees(_body([largest])) is not None


# Whichever decoder reads the body (a lax "1200" sends it to pydantic), the window is the same.
@pytest.mark.parametrize("lax", [False, True], ids=["fast", "pydantic"])
@pytest.mark.parametrize(
    ("started", "ended", "refused"),
    [
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", None),
        ("2026-03-02T09:59:59Z", "2026-03-02T10:00:00Z", None),
        ("2026-03-02T11:00:00+01:00", "2026-03-02T11:00:00+01:00", None),
        ("2019-12-31T23:59:59.999Z", "2020-01-01T00:00:01Z", ("started_at", "before 2020-01-01")),
        ("2020-01-01T00:30:00+01:00", "2020-01-01T01:30:00+01:00", ("started_at", "before 2020-01-01")),
        ("2026-03-02T09:59:59Z", "2026-03-02T10:00:00.001Z", ("ended_at", "24 hours ahead")),
        ("1899-12-31T23:59:59Z", "1900-01-01T00:00:00Z", ("started_at", "before 2020-01-01")),
        ("1950-06-01T00:00:00Z", "1950-06-01T00:00:01Z", ("started_at", "before 2020-01-01")),
        ("2200-01-01T00:00:00Z", "2200-01-01T00:00:01Z", ("started_at", "24 hours ahead")),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00", ("started_at", "before 2020-01-01")),
        ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59-05:00", ("started_at", "24 hours ahead")),
    ],
)
def test_the_ingestion_window_is_checked_after_either_decoder(
    lax: bool, started: str, ended: str, refused: tuple[str, str] | None
) -> None:
    rows = [row("m", started_at=NOW - timedelta(minutes=1)) for _ in range(3)]
    rows[1] = {**rows[1], "started_at": started, "ended_at": ended}
    if lax:
        rows[0]["input_tokens"] = "1200"
    body = _body(rows)
    assert (decode_batch(body) is None) == lax
    if refused is None:
        assert len(parse_batch(body, max_rows=10, machine_id="m", window=WINDOW).rows) == 3
        return
    with pytest.raises(BatchRejected) as caught:
        parse_batch(body, max_rows=10, machine_id="m", window=WINDOW)
    assert caught.value.status_code == 422
    [error] = caught.value.detail["errors"]
    field, words = refused
    assert (error["row"], error["field"]) == (1, field)
    assert words in error["message"] and "clock" in error["message"]


def test_lax_values_are_read_by_pydantic_and_kept() -> None:
    """A body only pydantic's lax mode reads ("12" for 12) is accepted with pydantic's values."""
    body = _body([row("m", started_at=NOW - timedelta(minutes=1), input_tokens="1200", cost_usd=0.0123)])
    assert decode_batch(body) is None
    parsed = parse_batch(body, max_rows=10, machine_id="m", window=WINDOW)
    assert isinstance(parsed.rows[0], WireRow)
    assert parsed.rows[0].input_tokens == 1200 and parsed.rows[0].cost_usd == Decimal("0.0123")


def test_problems_are_still_named_by_row_and_field() -> None:
    body = _body([row("m", started_at=NOW), row("m", started_at=NOW, input_tokens=-1)])
    with pytest.raises(BatchRejected) as caught:
        parse_batch(body, max_rows=10, machine_id="m", window=WINDOW)
    assert caught.value.status_code == 422
    assert caught.value.detail["errors"][0] == {
        "row": 1,
        "field": "input_tokens",
        "message": "Input should be greater than or equal to 0",
    }


def test_wire_row_mirrors_request_row() -> None:
    """Same fields, order and defaults: an edit to RequestRow must be made here too."""
    fields = msgspec.structs.fields(WireRow)
    assert tuple(f.name for f in fields) == tuple(RequestRow.model_fields)
    for wire in fields:
        reference = RequestRow.model_fields[wire.name]
        if reference.is_required():
            assert wire.required, wire.name
        else:
            assert wire.default == reference.default, wire.name
    model = RequestRow.model_validate(row("m"))
    assert from_model(RequestBatch(batch_id=model.request_uid, rows=[model])).rows[0] == WireRow(
        **dict(model)
    )
