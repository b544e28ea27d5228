"""The spend guard addon: a limited project's call at its budget gets the 429 and is never forwarded; the
override header and `halton-meter override` each pass one call; every doubt lets the call through."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from halton_meter import spend_limits
from halton_meter.attribution import ATTRIBUTION, Attributed, Attribution
from halton_meter.capture import STATE
from halton_meter.health import Health
from halton_meter.routing import ROUTE, Route
from halton_meter.spend_guard import SpendGuard
from halton_meter.spend_limits import OVERRIDE_HEADER, SpendLimit
from halton_meter.store import open_store


def metered(project: str | None = "shop", provider: str = "anthropic", **headers: str) -> http.HTTPFlow:
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8}).encode()
    f = tflow.tflow(req=http.Request.make("POST", "https://api.anthropic.com/v1/messages", body, headers))
    f.metadata[ROUTE] = Route(provider, "proxy", "/v1/messages")
    if project is not None:
        f.metadata[ATTRIBUTION] = Attributed(project, "header")
    return f


def limited(home, *, spend: str = "10.00", fetched: datetime | None = None) -> None:
    now = datetime.now(UTC)
    conn = open_store(home.db)
    figure = SpendLimit("shop", Decimal("10.00"), spend_limits.month_of(now), Decimal(spend), now)
    spend_limits.save_fetched(conn, [figure], fetched or now)
    conn.close()


def run(home, *flows: http.HTTPFlow, minutes: float = 15.0, health: Health | None = None) -> None:
    async def go() -> None:
        attribution = Attribution(Health())
        guard = SpendGuard(health or Health(), attribution, home.db)
        with taddons.context(guard) as tctx:
            tctx.configure(guard, halton_limits_fresh_minutes=minutes)
            for f in flows:
                await guard.requestheaders(f)
                await guard.request(f)
            guard.done()

    asyncio.run(go())


def events(home) -> list[tuple[str, str | None, str, str | None]]:
    conn = open_store(home.db)
    found = [(e.kind, e.via, e.project, e.model) for e in spend_limits.unsynced_events(conn, limit=100)]
    conn.close()
    return found


def refused(f: http.HTTPFlow) -> bool:
    return f.response is not None and f.response.status_code == 429


def test_a_call_at_the_limit_is_answered_429_in_the_providers_shape_and_not_recorded(home):
    limited(home)
    f = metered()
    f.metadata[STATE] = SimpleNamespace(
        info=SimpleNamespace(model_requested="claude-sonnet-4-5")
    )  # capture's
    run(home, f)
    assert refused(f)
    assert json.loads(f.response.content)["error"]["type"] == "rate_limit_error"
    assert "'shop'" in json.loads(f.response.content)["error"]["message"]
    # Capture and the recorder leave a flow without a route alone: no request row for a call never sent.
    assert ROUTE not in f.metadata and STATE not in f.metadata
    assert events(home) == [("blocked", None, "shop", "claude-sonnet-4-5")]


def test_under_the_limit_other_projects_and_unmetered_flows_pass(home):
    limited(home, spend="9.99")
    under, other = metered(), metered("api")
    unmetered = tflow.tflow(
        req=http.Request.make("GET", "http://example.com/", b"", {OVERRIDE_HEADER: "budget"})
    )
    run(home, under, other, unmetered)
    assert under.response is None and other.response is None and unmetered.response is None
    assert OVERRIDE_HEADER in unmetered.request.headers  # not ours to touch
    assert events(home) == []


def test_the_override_header_passes_one_call_and_is_never_forwarded(home):
    limited(home)
    passed, next_one = metered(**{OVERRIDE_HEADER: "budget"}), metered()
    run(home, passed, next_one)
    assert passed.response is None and OVERRIDE_HEADER not in passed.request.headers
    assert refused(next_one)
    assert events(home) == [("override", "header", "shop", None), ("blocked", None, "shop", None)]


def test_a_wrong_override_value_is_removed_counted_and_does_not_pass(home):
    limited(home)
    health = Health()
    f = metered(**{OVERRIDE_HEADER: "please"})
    run(home, f, health=health)
    assert refused(f) and OVERRIDE_HEADER not in f.request.headers
    assert health.errors() == {"guard.bad_override": 1}


def test_the_override_command_passes_exactly_the_next_call(home):
    limited(home)
    conn = open_store(home.db)
    spend_limits.grant_override(conn, "shop", datetime.now(UTC))
    conn.close()
    first, second = metered(), metered()
    run(home, first, second)
    assert first.response is None and refused(second)
    assert [e[:2] for e in events(home)] == [("override", "command"), ("blocked", None)]


def test_a_stale_figure_never_blocks(home):
    limited(home, spend="50.00", fetched=datetime.now(UTC) - timedelta(minutes=20))
    f = metered()
    run(home, f)
    assert f.response is None and events(home) == []


def test_a_project_still_being_looked_up_is_awaited(home):
    limited(home)

    async def go() -> http.HTTPFlow:
        attribution = Attribution(Health())
        guard = SpendGuard(Health(), attribution, home.db)
        f = metered(project=None)
        lookup: asyncio.Future[Attributed] = asyncio.get_running_loop().create_future()
        f.metadata[ATTRIBUTION] = lookup
        with taddons.context(guard):
            asyncio.get_running_loop().call_later(0.01, lookup.set_result, Attributed("shop", "directory"))
            await guard.request(f)
            guard.done()
        return f

    assert refused(asyncio.run(go()))


def test_a_broken_store_lets_the_call_through(home):
    limited(home)
    health = Health()
    home.db.unlink()
    home.db.mkdir()  # not a database any more
    f = metered()
    run(home, f, health=health)
    assert f.response is None and "guard.request" in health.errors()


def test_a_project_lookup_that_does_not_end_in_time_lets_the_call_through(home, monkeypatch):
    from halton_meter import spend_guard

    monkeypatch.setattr(spend_guard, "PROJECT_WAIT_S", 0.01)
    limited(home)
    health = Health()

    async def go() -> tuple[http.HTTPFlow, bool]:
        guard = SpendGuard(health, Attribution(Health()), home.db)
        f = metered(project=None)
        lookup: asyncio.Future[Attributed] = asyncio.get_running_loop().create_future()
        f.metadata[ATTRIBUTION] = lookup
        with taddons.context(guard):
            await guard.request(f)
            guard.done()
        return f, lookup.cancelled()

    f, cancelled = asyncio.run(go())
    assert (
        f.response is None and not cancelled
    )  # the lookup goes on for the row; the call did not wait for it
    assert health.errors() == {"guard.project_unknown": 1}
