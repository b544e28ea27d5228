"""A provider connection's state in words: the newer of the owner's last test and the pipelines' last pull."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from halton_api.connection_status import describe

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def row(**values) -> dict:
    return {"tested_at": None, "test_error": None, "last_pull_at": None, "last_pull_day": None,
            "last_pull_error": None, **values}  # fmt: skip


def test_untested_tested_and_pulled() -> None:
    assert describe(row(), NOW) == (None, "Not tested yet, no pull yet")
    assert describe(row(tested_at=NOW - timedelta(seconds=20)), NOW) == (
        True, "Connection works (tested just now), no pull yet"
    )  # fmt: skip
    pulled = row(tested_at=NOW - timedelta(hours=2), last_pull_at=NOW - timedelta(minutes=3),
                 last_pull_day=date(2026, 12, 5))  # fmt: skip
    assert describe(pulled, NOW) == (True, "Connection works, last pull 3 min ago (day 2026-12-05)")


def test_the_newest_outcome_decides_and_errors_are_the_providers_words() -> None:
    refused = "OpenAI refused the admin key (401) for GET /v1/organization/costs: invalid key"
    failed_pull = row(tested_at=NOW - timedelta(days=2), last_pull_at=NOW - timedelta(hours=5),
                      last_pull_day=date(2026, 12, 5), last_pull_error=refused)  # fmt: skip
    assert describe(failed_pull, NOW) == (False, f"Last pull 5 h ago failed: {refused}")
    # A test after the failed pull (the owner fixed the key) speaks for the connection now.
    retested = {**failed_pull, "tested_at": NOW - timedelta(minutes=1)}
    assert describe(retested, NOW)[0] is True
    assert describe(row(tested_at=NOW, test_error=refused), NOW) == (
        False,
        f"Test just now failed: {refused}",
    )


def test_a_key_that_cannot_be_read_says_so_whatever_worked_before() -> None:
    worked = row(tested_at=NOW - timedelta(hours=1), last_pull_at=NOW - timedelta(minutes=3),
                 last_pull_day=date(2026, 12, 5))  # fmt: skip
    works, sentence = describe(worked, NOW, readable=False)
    assert works is False and sentence.startswith("Stored key cannot be read — re-enter it"), sentence
