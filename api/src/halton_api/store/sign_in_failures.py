"""Failed sign-ins in a row per email address, and the lock they earn (the policy: `ratelimit.AccountLock`).

An attempt is counted as a failure before its password is checked, in a short transaction of its own that
the caller commits at once: concurrent guesses at one account queue on its row and each sees the count the
one before left, so firing a hundred at once earns no more tries than sending them one after another. A
correct password then deletes the row (`clear`). Keyed by the address as typed, trimmed and lower-cased,
whether or not an account has it (see migration 0009).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from halton_api.ratelimit import AccountLock
from halton_api.store import Connection


@dataclass(frozen=True)
class Attempt:
    """Whether a sign-in may be tried now; `locked_until`: refused, until when; allowed, the lock this
    attempt has started should its password be wrong (None: no lock yet)."""

    allowed: bool
    failures: int
    locked_until: datetime | None = None


def _key(email: str) -> str:
    return email.strip().lower()


async def begin(conn: Connection, *, email: str, now: datetime, policy: AccountLock) -> Attempt:
    """Count a sign-in to `email` as failed unless its password proves right (`clear`), or refuse it."""
    key = _key(email)
    # Forget failures nobody has added to for a while, unless they still hold a lock.
    await conn.execute(
        "DELETE FROM sign_in_failures WHERE last_failed_at < %s AND (locked_until IS NULL OR locked_until <= %s)",
        (now - policy.forget_after, now),
    )
    # A locked row is left as it is (the WHERE), still locked against concurrent attempts until we commit.
    row = await (
        await conn.execute(
            "INSERT INTO sign_in_failures AS f (email, failures, last_failed_at) VALUES (%(key)s, 1, %(now)s)"
            " ON CONFLICT (email) DO UPDATE SET failures = f.failures + 1, last_failed_at = %(now)s"
            " WHERE f.locked_until IS NULL OR f.locked_until <= %(now)s"
            " RETURNING failures",
            {"key": key, "now": now},
        )
    ).fetchone()
    if row is None:
        held = await (
            await conn.execute("SELECT failures, locked_until FROM sign_in_failures WHERE email = %s", (key,))
        ).fetchone()
        assert held is not None  # the conflicting row, locked by the INSERT until this transaction ends
        return Attempt(allowed=False, failures=held["failures"], locked_until=held["locked_until"])
    failures = row["failures"]
    lock = policy.lock_for(failures)
    if lock is None:
        return Attempt(allowed=True, failures=failures)
    await conn.execute("UPDATE sign_in_failures SET locked_until = %s WHERE email = %s", (now + lock, key))
    return Attempt(allowed=True, failures=failures, locked_until=now + lock)


async def clear(conn: Connection, *, email: str) -> None:
    """The password was right: the account starts again from no failures."""
    await conn.execute("DELETE FROM sign_in_failures WHERE email = %s", (_key(email),))
