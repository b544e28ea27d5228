"""Rate limits on credentials: in-process token buckets per address and per presented credential, and the
account lock policy for passwords (whose state lives in PostgreSQL, `store.sign_in_failures`).

Buckets: only failures take a token, so a well-behaved client never notices them; a key whose bucket is
empty is told to wait (429 with Retry-After). Each credential kind has buckets of its own, so a flood of
bogus sync tokens never holds up a password or an API key from the same address. Each app instance owns its
buckets (on `app.state`): with several API processes each keeps its own count, so an address gets a burst
per process. That is acceptable for what they guard: tokens and keys carry 178 random bits (guessing them
is hopeless; the buckets only slow a flood), and passwords are held by the account lock, which is shared.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class CredentialKind(StrEnum):
    PASSWORD = "password"
    API_KEY = "api_key"
    SYNC_TOKEN = "sync_token"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)

    def retry_after(self, key: str) -> int | None:
        """Seconds `key` must wait before trying again, or None when it may go ahead.

        Asking remembers nothing: only failures make a bucket, so checking every valid credential (the
        ingestion path) never fills the table or pushes a failing key out of it.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = self._refilled(bucket, self._clock())
        if tokens >= 1:
            return None
        return max(1, math.ceil((1 - tokens) / self.rate))

    def failed(self, key: str) -> None:
        """Count one bad attempt from `key`."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = self._refilled(bucket, now)
            bucket.updated = now
            self._buckets.move_to_end(key)
        bucket.tokens = max(0.0, bucket.tokens - 1)


def bad_credential_limiters(
    *, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
) -> dict[CredentialKind, TokenBucketLimiter]:
    """One limiter per credential kind: a flood of one kind can neither hold up nor evict another's."""
    return {
        kind: TokenBucketLimiter(burst=burst, per_minute=per_minute, clock=clock) for kind in CredentialKind
    }


# 2**40 times the first lock is far past any cap; keeps the arithmetic finite however many failures.
_MAX_DOUBLINGS = 40


@dataclass(frozen=True)
class AccountLock:
    """How long an account's sign-in stays refused after its `failures`-th failure in a row.

    From the `after`-th failure on, `first` doubles with each further failure, up to `longest`: a guesser
    gets at most one try per `longest` once it is reached, and the owner waits at most that long after the
    guessing stops. Failures nobody added to for `forget_after` are forgotten.
    """

    after: int
    first: timedelta
    longest: timedelta
    forget_after: timedelta

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.after:
            return None
        doublings = min(failures - self.after, _MAX_DOUBLINGS)
        seconds = min(self.longest.total_seconds(), self.first.total_seconds() * 2.0**doublings)
        return timedelta(seconds=seconds)
