"""Rate limits on credentials: token buckets per address and per presented credential, and the account lock
policy for passwords (whose state lives in PostgreSQL, `store.sign_in_failures`).

Buckets: only failures take a token, so a well-behaved client never notices them; a key whose bucket is
empty is told to wait (429 with Retry-After). Each credential kind has buckets of its own, so a flood of
bogus sync tokens never holds up a password or an API key from the same address. The buckets of bad
credentials live in PostgreSQL (`SharedBucketLimiter`, `store.credential_failures`): every API process counts
the same failures, so N processes do not allow N bursts. `TokenBucketLimiter` keeps buckets in one process's
memory, for the limits where a burst per process is harmless (sign-ups, pairing codes asked for and typed:
see `create_app`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from psycopg_pool import AsyncConnectionPool

from halton_api.store import credential_failures


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


class SharedBucketLimiter:
    """`TokenBucketLimiter`'s buckets in PostgreSQL, for one credential kind: every API process sees the same
    counts. Only failures write; a check reads one row by key."""

    def __init__(
        self, pool: AsyncConnectionPool, *, kind: CredentialKind, burst: int, per_minute: float
    ) -> None:
        self._pool = pool
        self.kind = kind
        self.burst = burst
        self.rate = per_minute / 60.0

    async def retry_after(self, key: str) -> int | None:
        """Seconds `key` must wait before trying again, or None when it may go ahead."""
        async with self._pool.connection() as conn:
            held = await credential_failures.tokens(
                conn, key=f"{self.kind}:{key}", burst=self.burst, rate=self.rate
            )
        return self._wait(held)

    async def failed(self, key: str) -> int | None:
        """Count one bad attempt from `key`; returns the wait it was already under (None: it was allowed)."""
        async with self._pool.connection() as conn, conn.transaction():
            held = await credential_failures.take(
                conn, key=f"{self.kind}:{key}", burst=self.burst, rate=self.rate
            )
        return self._wait(held)

    def _wait(self, tokens: float) -> int | None:
        return None if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))


def bad_credential_limiters(
    pool: AsyncConnectionPool, *, burst: int, per_minute: float
) -> dict[CredentialKind, SharedBucketLimiter]:
    """One limiter per credential kind: a flood of one kind can never hold up another's."""
    return {
        kind: SharedBucketLimiter(pool, kind=kind, burst=burst, per_minute=per_minute)
        for kind in CredentialKind
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
