"""Hard limits: when a call is refused (the decision), and what the store keeps of limits, overrides, events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from halton_meter import spend_limits
from halton_meter.spend_limits import Limits, SpendLimit, decide
from halton_meter.store import mark_synced, open_store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def limit(spend: str | None = "9.00", budget: str = "10.00", month: str = "2026-12", **kw) -> SpendLimit:
    return SpendLimit(
        project="shop",
        budget_usd=Decimal(budget),
        month=month,
        month_to_date_usd=Decimal(spend) if spend is not None else None,
        spend_as_of=kw.pop("as_of", NOW - timedelta(minutes=5)),
        **kw,
    )


def known(*limits: SpendLimit, fetched: datetime | None = NOW - timedelta(minutes=1)) -> Limits:
    return Limits(fetched, {x.project: x for x in limits})


@pytest.mark.parametrize(
    ("spend", "local", "blocked"),
    [
        ("9.00", "0", False),
        ("9.00", "0.99", False),
        ("9.00", "1.00", True),
        ("10.00", "0", True),
        ("12", "0", True),
    ],
)
def test_a_fresh_figure_plus_local_spend_at_the_budget_blocks(spend, local, blocked):
    chosen = limit(spend)
    decision = decide(chosen, limits=known(chosen), now=NOW, window=WINDOW, local_usd=Decimal(local))
    assert decision.block is blocked
    assert decision.spend_usd == Decimal(spend) + Decimal(local)


def test_never_blocks_when_it_cannot_tell():
    over = limit("50.00")
    cases = {
        "no limit": decide(None, limits=known(over), now=NOW, window=WINDOW, local_usd=Decimal(99)),
        "never fetched": decide(
            over, limits=known(over, fetched=None), now=NOW, window=WINDOW, local_usd=Decimal(0)
        ),
        "stale": decide(
            over,
            limits=known(over, fetched=NOW - timedelta(minutes=16)),
            now=NOW,
            window=WINDOW,
            local_usd=Decimal(0),
        ),
        "unknown figure": decide(
            limit(None, problem="marts not built"),
            limits=known(over),
            now=NOW,
            window=WINDOW,
            local_usd=Decimal(99),
        ),
        "last month's figure": decide(
            limit("50.00", month="2026-11"), limits=known(over), now=NOW, window=WINDOW, local_usd=Decimal(0)
        ),
    }
    assert {name: d.block for name, d in cases.items()} == dict.fromkeys(cases, False)
    assert "marts not built" in cases["unknown figure"].reason
    # At the window's edge it still counts as fresh; past it, not.
    edge = known(over, fetched=NOW - WINDOW)
    assert decide(over, limits=edge, now=NOW, window=WINDOW, local_usd=Decimal(0)).block


def test_local_spend_counts_rows_the_figure_cannot_hold(home, seed):
    conn = open_store(home.db)
    now = datetime.now(UTC)
    as_of = now - timedelta(minutes=10)
    synced_before = seed(project="shop", cost="1.00", when=now - timedelta(minutes=30))
    synced_after = seed(project="shop", cost="2.00", when=now - timedelta(minutes=20))
    seed(project="shop", cost="4.00", when=now - timedelta(minutes=1))  # not synced
    seed(project="other", cost="8.00", when=now)
    if now.day > 1:
        seed(
            project="shop", cost="16.00", when=spend_limits.month_start(now) - timedelta(days=1)
        )  # last month
    mark_synced(conn, [synced_before.request_uid], as_of - timedelta(minutes=1))
    mark_synced(conn, [synced_after.request_uid], as_of + timedelta(minutes=1))
    chosen = limit(as_of=as_of)
    assert spend_limits.local_spend_since(conn, chosen, now) == Decimal("6.00")
    # No figure time: nothing of this meter's is in the figure, so the whole month counts.
    assert spend_limits.local_spend_since(conn, limit(as_of=None), now) == Decimal("7.00")


def test_fetched_limits_replace_the_old_ones_and_a_failure_keeps_them(home):
    conn = open_store(home.db)
    assert spend_limits.load(conn) == Limits(None, {})
    spend_limits.save_fetched(conn, [limit(), replace(limit(None, problem="no marts"), project="api")], NOW)
    first = spend_limits.load(conn)
    assert first.fetched_at == NOW and set(first.limits) == {"shop", "api"}
    assert first.limits["shop"] == limit()
    spend_limits.save_failure(conn, "cannot reach cloud", NOW + timedelta(minutes=1))
    failed = spend_limits.load(conn)
    assert failed.limits == first.limits and failed.fetched_at == NOW
    assert failed.last_error == "cannot reach cloud"
    spend_limits.save_fetched(conn, [], NOW + timedelta(minutes=2))
    assert spend_limits.load(conn) == Limits(NOW + timedelta(minutes=2), {})


def test_an_override_passes_exactly_one_call(home):
    conn = open_store(home.db)
    assert not spend_limits.take_override(conn, "shop")
    spend_limits.grant_override(conn, "shop", NOW)
    spend_limits.grant_override(conn, "shop", NOW)  # asking twice is still one call
    assert spend_limits.pending_overrides(conn) == ["shop"]
    assert spend_limits.take_override(conn, "shop")
    assert not spend_limits.take_override(conn, "shop")


def test_events_wait_for_the_cloud_then_are_marked_sent(home):
    conn = open_store(home.db)
    event = spend_limits.LimitEvent(
        kind="blocked", via=None, project="shop", provider="anthropic", model="claude-sonnet-4-5",
        at=datetime.now(UTC), budget_usd=Decimal("10"), spend_usd=Decimal("10.5"),
    )  # fmt: skip
    uid = spend_limits.record_event(conn, event)
    waiting = spend_limits.unsynced_events(conn, limit=10)
    assert [e.event_uid for e in waiting] == [uid]
    wire = waiting[0].to_wire()
    assert wire["budget_usd"] == "10.00" and wire["spend_usd"] == "10.500000000" and wire["via"] is None
    assert spend_limits.count_events(conn) == {
        "blocked_this_month": 1,
        "overridden_this_month": 0,
        "unsynced": 1,
    }
    spend_limits.mark_events_synced(conn, [uid], datetime.now(UTC))
    assert spend_limits.unsynced_events(conn, limit=10) == []


def test_the_wire_form_is_read_or_refused_naming_the_item():
    read = spend_limits.parse_wire(
        [{"project": "shop", "budget_usd": "10.00", "month": "2026-12", "month_to_date_usd": "3.5",
          "spend_as_of": "2026-12-07T11:00:00Z"},
         {"project": "api", "budget_usd": "5", "month": "2026-12", "month_to_date_usd": None, "spend_as_of": None,
          "problem": "marts not built"}]
    )  # fmt: skip
    assert read[0].month_to_date_usd == Decimal("3.5") and read[0].spend_as_of == datetime(
        2026, 12, 7, 11, tzinfo=UTC
    )
    assert read[1].month_to_date_usd is None and read[1].problem == "marts not built"
    with pytest.raises(ValueError, match=r"spend_limits\[0\]"):
        spend_limits.parse_wire([{"project": "shop", "budget_usd": "lots", "month": "2026-12"}])


def test_a_disconnect_forgets_the_limits_and_pending_overrides_but_keeps_unsent_events(home):
    from halton_meter.cloud.link import wipe_local

    conn = open_store(home.db)
    spend_limits.save_fetched(conn, [limit()], NOW)
    spend_limits.grant_override(conn, "shop", NOW)
    event = spend_limits.LimitEvent(
        kind="blocked", via=None, project="shop", provider="xai", model=None, at=NOW,
        budget_usd=Decimal("10"), spend_usd=Decimal("11"),
    )  # fmt: skip
    spend_limits.record_event(conn, event)
    wipe_local(home)
    assert spend_limits.load(conn) == Limits(None, {})
    assert (
        spend_limits.pending_overrides(conn) == [] and len(spend_limits.unsynced_events(conn, limit=10)) == 1
    )
