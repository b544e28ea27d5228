"""A provider connection's state in words, for the billing settings page and the reconciliation page:
"Connection works, last pull 3 min ago", or the provider's error as it gave it."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def ago(when: datetime, now: datetime) -> str:
    seconds = max(int((now - when).total_seconds()), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


# A live key that does not open with the server's secret (rotated since the key was saved, or a damaged row):
# no test or pull can use it, whatever they said before.
UNREADABLE = (
    "Stored key cannot be read — re-enter it (it does not decrypt with this server's HALTON_SECRET_KEY,"
    " which changed since the key was saved)"
)


def describe(row: dict[str, Any], now: datetime, *, readable: bool = True) -> tuple[bool | None, str]:
    """(works, sentence): works is None when the key was neither tested nor pulled with yet. The newest of
    the last test and the last pull decides; a key that cannot be read is named as such first."""
    if not readable:
        return False, UNREADABLE
    pulled = (
        f"last pull {ago(row['last_pull_at'], now)} (day {row['last_pull_day']})"
        if row["last_pull_at"]
        else "no pull yet"
    )
    tested, pull = row["tested_at"], row["last_pull_at"]
    if tested is None and pull is None:
        return None, "Not tested yet, no pull yet"
    if pull is not None and (tested is None or pull >= tested):
        if row["last_pull_error"]:
            return False, f"Last pull {ago(pull, now)} failed: {row['last_pull_error']}"
        return True, f"Connection works, {pulled}"
    if row["test_error"]:
        return False, f"Test {ago(tested, now)} failed: {row['test_error']}"
    return True, f"Connection works (tested {ago(tested, now)}), {pulled}"
