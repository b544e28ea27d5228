"""The requests tables' keyset cursor and their CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from halton_api.dashboards.page_models import RequestRowPublic, RequestTable
from halton_api.dashboards.priced_requests import csv_response
from halton_api.errors import Invalid
from halton_api.warehouse_access.raw_requests import decode_cursor, encode_cursor


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    at, uid = datetime(2026, 11, 22, 23, 17, 0, 273000, tzinfo=UTC), uuid.uuid4()
    cursor = encode_cursor(at, uid)
    assert "=" not in cursor and decode_cursor(cursor) == (at, uid)
    for bad in ("nope", "bm9wZQ", encode_cursor(at, uid)[:-4]):
        with pytest.raises(Invalid, match=r"^cursor: "):
            decode_cursor(bad)


def test_the_requests_csv_neutralises_formulas_and_keeps_numbers() -> None:
    """Model, device and provider_request_id come from laptops and providers; a credit is a negative cost."""
    row = RequestRowPublic(
        request_uid=uuid.uuid4(), started_at=datetime(2026, 11, 22, 9, 30, tzinfo=UTC), provider="openai",
        model="=HYPERLINK(\"http://evil.example\",\"x\")", project="web", device_id=uuid.uuid4(),
        device="@laptop", status_code=200, streamed=False, input_tokens=10, output_tokens=3,
        cost_usd=Decimal("-1.500000000"), cost_source="logged", latency_ms=120, provider_request_id="-1+1",
    )  # fmt: skip
    response = csv_response(RequestTable(rows=[row], next_cursor=None), "x.csv")
    (exported,) = csv.DictReader(io.StringIO(response.body.decode(), newline=""))
    assert exported["model"] == '\'=HYPERLINK("http://evil.example","x")'
    assert exported["device"] == "'@laptop" and exported["provider_request_id"] == "'-1+1"
    assert exported["cost_usd"] == "-1.500000000" and Decimal(exported["cost_usd"]) == Decimal("-1.5")
    assert exported["started_at"] == "2026-11-22T09:30:00+00:00" and exported["status_code"] == "200"
