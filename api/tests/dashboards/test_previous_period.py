"""One definition of "previous period" (`Period.previous`), the one every page and report compares with."""

from __future__ import annotations

from datetime import UTC, date, datetime

from halton_api.dashboards import spend
from halton_api.dashboards.filters import Filters


def previous(range_: str, now: datetime) -> tuple[date, date, str]:
    before = Filters(range=range_).period(now).previous()
    return before.first_day, before.last_day, before.label


def test_month_to_date_compares_with_the_same_days_of_last_month() -> None:
    now = datetime(2026, 12, 6, 14, tzinfo=UTC)
    assert previous("this_month", now) == (date(2026, 11, 1), date(2026, 11, 6), "the same days of November")
    # The executive's "last month to the same day" is the same period.
    same_day = spend.calendar_periods(now)["last_month_to_same_day"]
    assert (same_day.first_day, same_day.last_day) == (date(2026, 11, 1), date(2026, 11, 6))
    # Cut at the end of a shorter month; a whole month against the whole month before.
    assert previous("this_month", datetime(2026, 3, 30, 1, tzinfo=UTC))[:2] == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )
    assert previous("last_month", now) == (date(2026, 10, 1), date(2026, 10, 31), "the whole of October")


def test_other_ranges_compare_with_the_same_length_just_before() -> None:
    now = datetime(2026, 12, 6, 14, tzinfo=UTC)
    assert previous("7d", now) == (date(2026, 11, 23), date(2026, 11, 29), "the 7 days before")
    assert previous("30d", now)[:2] == (date(2026, 10, 8), date(2026, 11, 6))
    said = Filters(range="this_month").period(now).compared_with()
    assert said == "the same days of November (01 Nov 2026 \u2013 06 Nov 2026)"
