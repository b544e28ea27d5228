"""A small in-process token bucket per client address, for repeated bad credentials.

Only failures take a token, so a well-behaved client never notices it; an address whose bucket is empty
is told to wait (429 with Retry-After) before its credentials are even looked at. Each app instance owns
its limiter (on `app.state`); with several workers each keeps its own count, which is the point of a
cheap first line of defence.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(self, *, burst: int, per_minute: float, max_keys: int = 10_000) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def retry_after(self, key: str) -> int | None:
        """Seconds `key` must wait before trying again, or None when it may go ahead."""
        now = time.monotonic()
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1:
            return None
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def failed(self, key: str) -> None:
        """Count one bad attempt from `key`."""
        bucket = self._bucket(key, time.monotonic())
        bucket.tokens = max(0.0, bucket.tokens - 1)
