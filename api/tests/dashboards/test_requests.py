"""The requests tables' keyset cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from halton_api.errors import Invalid
from halton_api.store.requests import decode_cursor, encode_cursor


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    at, uid = datetime(2026, 11, 22, 23, 17, 0, 273000, tzinfo=UTC), uuid.uuid4()
    cursor = encode_cursor(at, uid)
    assert "=" not in cursor and decode_cursor(cursor) == (at, uid)
    for bad in ("nope", "bm9wZQ", encode_cursor(at, uid)[:-4]):
        with pytest.raises(Invalid, match=r"^cursor: "):
            decode_cursor(bad)
