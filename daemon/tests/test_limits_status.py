"""The hard limits line of `halton-meter status`: what is in force, and when nothing is, why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from halton_meter import spend_limits
from halton_meter.limits_status import limits_status
from halton_meter.spend_limits import SpendLimit
from halton_meter.store import open_store


def _status(conn, *, paired: bool = True, cloud_problem: str | None = None, now: datetime | None = None):
    return limits_status(
        conn, now=now or datetime.now(UTC), fresh_minutes=15, paired=paired, cloud_problem=cloud_problem
    )


def _limit(project: str, spend: str | None, now: datetime) -> SpendLimit:
    figure = Decimal(spend) if spend is not None else None
    return SpendLimit(
        project,
        Decimal("10.00"),
        spend_limits.month_of(now),
        figure,
        now,
        "marts not built" if figure is None else None,
    )


def test_an_unpaired_meter_has_no_limits_and_a_paired_one_waits_for_its_first_figure(home):
    conn = open_store(home.db)
    assert _status(conn, paired=False).summary == "none: not connected to a cloud"
    waiting = _status(conn, cloud_problem="cloud unreachable (connection refused)")
    assert not waiting.enforcing
    assert waiting.summary == (
        "not enforcing: no spend figure fetched from the cloud yet (cloud unreachable (connection refused))"
    )


def test_fresh_limits_are_in_force_and_a_reached_one_says_so(home, seed):
    conn = open_store(home.db)
    now = datetime.now(UTC)
    spend_limits.save_fetched(conn, [_limit("shop", "9.50", now), _limit("api", None, now)], now)
    seed(project="shop", cost="0.75")  # not synced: the figure cannot hold it
    spend_limits.grant_override(conn, "shop", now)
    status = _status(conn)
    assert (
        status.enforcing
        and status.summary == "1 in force; not enforcing api (no spend figure from the cloud)"
    )
    shop, api = sorted(status.projects, key=lambda p: p.project != "shop")
    assert shop.reached and shop.local_usd == Decimal("0.75") and shop.note == "reached: calls are refused"
    assert not api.enforced and "marts not built" in api.note
    assert status.pending_overrides == ["shop"]
    assert status.to_json()["projects"][0]["local_unsynced_usd"] == "0.750000000"


def test_a_stale_figure_is_not_enforced_and_the_cause_is_named(home):
    conn = open_store(home.db)
    now = datetime.now(UTC)
    fetched = now - timedelta(minutes=42)
    spend_limits.save_fetched(conn, [_limit("shop", "50", fetched)], fetched)
    spend_limits.save_failure(conn, "cannot reach cloud.test: ConnectError", now - timedelta(seconds=5))
    status = _status(conn, now=now)
    assert not status.enforcing
    assert status.summary == (
        "not enforcing: last spend figure 42m old (fresh for 15 min), "
        "cloud unreachable (cannot reach cloud.test: ConnectError): calls pass"
    )
    assert not status.projects[0].reached


def test_no_limit_in_the_workspace(home):
    conn = open_store(home.db)
    spend_limits.save_fetched(conn, [], datetime.now(UTC))
    assert _status(conn).summary == "none: no project's budget is a hard limit"
