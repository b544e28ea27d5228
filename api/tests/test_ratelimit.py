"""The bad-credentials token bucket: a burst, then a trickle; only failures count."""

from __future__ import annotations

import time

from halton_api.ratelimit import TokenBucketLimiter


def test_a_burst_then_a_wait(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    limiter = TokenBucketLimiter(burst=3, per_minute=6)
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") is None
        limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 10
    assert limiter.retry_after("5.6.7.8") is None  # per address
    now[0] += 10
    assert limiter.retry_after("1.2.3.4") is None


def test_the_table_of_addresses_is_bounded() -> None:
    limiter = TokenBucketLimiter(burst=1, per_minute=1, max_keys=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) == 100
