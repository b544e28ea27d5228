"""`Retry-After` is a number of seconds or an HTTP date; anything else is no advice."""

from __future__ import annotations

import pytest

from halton_meter.retry_after import parse_retry_after


@pytest.mark.parametrize(
    "value, expected",
    [("3", 3.0), ("0", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_is_seconds_or_a_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected
