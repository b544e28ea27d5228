"""Recorder addon and RowBuilder: from a captured call to the stored row, priced, never lost."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mitmproxy.test import taddons, tflow

from halton_meter.attribution import ATTRIBUTION, Attributed, Attribution
from halton_meter.capture import CALL, CapturedCall
from halton_meter.health import Health
from halton_meter.pricing import Price, PriceBook
from halton_meter.recorder import Recorder, RowBuilder
from halton_meter.usage import RequestInfo, Usage

STARTED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
INFO = RequestInfo("openai", "/v1/chat/completions", "gpt-4o", streamed=False, prompt_hash="ab" * 32)


def call(usage: Usage | None, status: int | None = 200, **kw) -> CapturedCall:
    return CapturedCall(
        request_uid=uuid.uuid4(),
        info=kw.pop("info", INFO),
        usage=usage,
        status_code=status,
        started_at=STARTED,
        ended_at=STARTED + timedelta(milliseconds=850),
        ttfb_ms=300,
        **kw,
    )


def usage(**kw) -> Usage:
    values = {
        "model_served": "gpt-4o-2024-08-06",
        "input_tokens": 1000,
        "output_tokens": 100,
        "complete": True,
    }
    return Usage(**{**values, **kw})


def test_a_priced_row_carries_every_field():
    health = Health()
    stored = RowBuilder(PriceBook(), "machine-1", health)(
        call(usage(cache_read_tokens=200), project="web", attribution_tier="header")
    )
    row = stored.row
    # gpt-4o: 800 uncached x $2.50 + 200 cached x $1.25 + 100 output x $10, per million.
    assert row.cost_usd == Decimal("0.003250000")
    assert row.price_card.startswith("catalogue ")
    assert (row.machine_id, row.project, row.attribution_tier) == ("machine-1", "web", "header")
    assert (row.latency_ms, row.ttfb_ms, row.status_code, row.complete) == (850, 300, 200, True)
    assert row.model_requested == "gpt-4o" and row.model_served == "gpt-4o-2024-08-06"
    assert stored.unpriced_reason is None and health.errors() == {}


def test_no_response_is_unpriced_with_a_reason():
    stored = RowBuilder(PriceBook(), "m", Health())(call(None, status=None, error="Connection refused"))
    assert stored.row.cost_usd is None and stored.row.status_code is None and not stored.row.complete
    assert stored.unpriced_reason == "no response from the provider"
    assert stored.error == "Connection refused"


def test_counts_that_break_the_convention_keep_the_call_without_them():
    health = Health()
    bad = usage(input_tokens=10, cache_read_tokens=50)  # more cached than total: rejected by RequestRow
    stored = RowBuilder(PriceBook(), "m", health)(call(bad))
    assert stored.row.input_tokens is None and stored.row.cost_usd is None
    assert stored.unpriced_reason == "usage failed validation"
    assert health.errors() == {"row.invalid": 1}


def test_a_wall_clock_jump_during_a_call_keeps_the_row_without_its_durations():
    """A laptop clock corrected mid-call gives durations past the column's 49 days, or below zero: the row is
    kept with them not known (or 0), never dropped for them."""
    jumped = call(usage())
    jumped.ended_at = STARTED + timedelta(days=60)
    jumped.ttfb_ms = 60 * 86_400_000
    row = RowBuilder(PriceBook(), "m", Health())(jumped).row
    assert (row.latency_ms, row.ttfb_ms) == (None, None) and row.input_tokens == 1000
    backwards = call(usage())
    backwards.ttfb_ms = -5
    assert RowBuilder(PriceBook(), "m", Health())(backwards).row.ttfb_ms == 0


class ExplodingPriceBook:
    version = "test"

    def price(self, info, usage, at) -> Price:
        raise RuntimeError("pricing exploded")


def test_a_pricing_failure_is_counted_and_the_row_kept():
    health = Health()
    stored = RowBuilder(ExplodingPriceBook(), "m", health)(call(usage()))
    assert stored.row.cost_usd is None and stored.unpriced_reason == "pricing failed"
    assert health.errors() == {"pricing": 1}


def test_costs_are_rounded_to_nine_places():
    class Book:
        version = "t"

        def price(self, info, usage, at, *, status_code=None):
            return Price(Decimal("0.0000000015"), "card", None)

    assert RowBuilder(Book(), "m", Health())(call(usage())).row.cost_usd == Decimal("0.000000002")


class ListWriter:
    def __init__(self) -> None:
        self.items: list[CapturedCall] = []

    def submit(self, item: CapturedCall) -> None:
        self.items.append(item)


def test_recorder_submits_with_the_attribution_and_waits_for_a_directory_lookup():
    async def go():
        writer = ListWriter()
        attribution = Attribution(Health())
        recorder = Recorder(writer, attribution, Health())
        with taddons.context(attribution, recorder):
            now = tflow.tflow(resp=True)
            now.metadata[CALL] = call(usage())
            now.metadata[ATTRIBUTION] = Attributed("web", "header")
            await recorder.response(now)
            assert [c.project for c in writer.items] == ["web"]

            later = tflow.tflow(err=True)
            later.metadata[CALL] = call(None, status=None)
            lookup = asyncio.get_running_loop().create_future()
            later.metadata[ATTRIBUTION] = lookup
            await recorder.error(later)
            assert len(writer.items) == 1  # not submitted while the lookup runs, and never blocking
            lookup.set_result(Attributed("repo", "directory"))
            await asyncio.sleep(0)
            await recorder.done()
            return writer.items

    items = asyncio.run(go())
    assert [(c.project, c.attribution_tier) for c in items] == [("web", "header"), ("repo", "directory")]


def test_a_call_stays_in_flight_until_the_recorder_hands_it_over():
    """Meter.flush waits on this set: a call must not look settled between capture and the writer."""
    from mitmproxy.test import taddons

    from halton_meter.recorder import Recorder
    from halton_meter.routing import ROUTE

    class Writer:
        def __init__(self) -> None:
            self.items: list = []

        def submit(self, item) -> None:
            self.items.append(item)

    async def go():
        recorder = Recorder(Writer(), None, Health())  # type: ignore[arg-type]
        with taddons.context(recorder):
            flow = tflow.tflow(resp=True)
            flow.metadata[ROUTE] = object()
            await recorder.requestheaders(flow)
            assert flow.id in recorder.in_flight
            await recorder.response(flow)  # no captured call on it: nothing to write, still settled
            return recorder

    assert not asyncio.run(go()).in_flight


def test_answered_calls_are_journaled_once_unless_their_record_changes(tmp_path):
    from halton_meter.journal import Journal
    from halton_meter.recorder import decode_call

    async def go():
        writer = ListWriter()
        attribution = Attribution(Health())
        journal = Journal(tmp_path / "journal", Health())
        journal.open()
        recorder = Recorder(writer, attribution, Health(), journal)
        with taddons.context(attribution, recorder):
            settled = tflow.tflow(resp=True)
            settled.metadata[ATTRIBUTION] = Attributed("web", "header")
            answer = call(usage())
            recorder.answered(settled, answer)  # the closing event went by
            recorder.answered(settled, replace(answer))  # the body ended: same record, not written again
            settled.metadata[CALL] = answer
            await recorder.response(settled)

            late = tflow.tflow(resp=True)
            lookup = asyncio.get_running_loop().create_future()
            late.metadata[ATTRIBUTION] = lookup
            pending = call(usage())
            recorder.answered(late, pending)  # journaled at once, with the default project
            late.metadata[CALL] = pending
            await recorder.response(late)
            lookup.set_result(Attributed("repo", "directory"))
            await asyncio.sleep(0)
        journal.close()
        return writer.items

    items = asyncio.run(go())
    assert [c.journaled_in for c in items] == [[1], [1, 1]]
    payloads = [
        p
        for _, found, _ in Journal(tmp_path / "journal", Health()).read(
            sorted((tmp_path / "journal").glob("*.log"))
        )
        for p in found
    ]
    assert [(decode_call(p).project, decode_call(p).attribution_tier) for p in payloads] == [
        ("web", "header"),
        ("default", "default"),
        ("repo", "directory"),
    ]
