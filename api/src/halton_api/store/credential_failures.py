"""Token buckets of bad credentials in PostgreSQL (migration 0016), shared by every API process; the policy
and its users are `ratelimit.SharedBucketLimiter`'s. Times are PostgreSQL's `now()`: one clock for all hosts."""

from __future__ import annotations

from halton_api.store import Connection

_REFILLED = "LEAST(%(burst)s, tokens + extract(epoch FROM now() - updated_at) * %(rate)s)"


async def tokens(conn: Connection, *, key: str, burst: int, rate: float) -> float:
    """What `key`'s bucket holds now (`rate` tokens a second back, up to `burst`); full without a row."""
    row = await (
        await conn.execute(
            f"SELECT {_REFILLED} AS tokens FROM credential_failures WHERE key = %(key)s",
            {"key": key, "burst": burst, "rate": rate},
        )
    ).fetchone()
    return float(burst) if row is None else float(row["tokens"])


async def take(conn: Connection, *, key: str, burst: int, rate: float) -> float:
    """Take a token from `key`'s bucket for one failure; returns what it held before. Concurrent failures of
    one key queue on its row (call inside a transaction), so none is lost."""
    row = await (
        await conn.execute(
            f"SELECT {_REFILLED} AS tokens FROM credential_failures WHERE key = %(key)s FOR UPDATE",
            {"key": key, "burst": burst, "rate": rate},
        )
    ).fetchone()
    before = float(burst) if row is None else float(row["tokens"])
    await conn.execute(
        "INSERT INTO credential_failures (key, tokens, updated_at) VALUES (%(key)s, %(after)s, now())"
        " ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at",
        {"key": key, "after": max(0.0, before - 1)},
    )
    # Buckets full again (untouched for burst / rate seconds) are the same as no row.
    await conn.execute(
        "DELETE FROM credential_failures WHERE updated_at < now() - make_interval(secs => %s)",
        (burst / rate,),
    )
    return before
