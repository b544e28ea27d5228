"""The demo generator: deterministic, valid wire rows, the story it promises, and chunked so 10M rows fit."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from halton_warehouse.demo.demo_data import MODELS, PROVIDERS, Demo, DemoConfig

CONFIG = DemoConfig(
    seed=3, requests=6_000, days=45, until=datetime(2026, 11, 1, tzinfo=UTC), chunk_size=2_000
)


def test_same_config_same_rows() -> None:
    first = [r.row for r in Demo(CONFIG).requests(validate=False)]
    second = [r.row for r in Demo(CONFIG).requests(validate=False)]
    assert first == second
    other = [r.row for r in Demo(DemoConfig(**{**CONFIG.__dict__, "seed": 4})).requests(validate=False)]
    assert other != first


def test_every_row_is_a_valid_request_row_in_the_period() -> None:
    demo = Demo(CONFIG)
    rows = [r.row for r in demo.requests(validate=True)]  # RequestRow validation runs on each
    assert len(rows) == CONFIG.requests
    assert len({r.request_uid for r in rows}) == len(rows)
    assert all(CONFIG.since <= r.started_at < CONFIG.until + timedelta(minutes=10) for r in rows)
    assert {r.provider for r in rows} == set(PROVIDERS)
    assert {r.machine_id for r in rows} <= {d.machine_id for d in demo.devices}
    assert {r.project for r in rows} <= {p.slug for p in demo.projects}
    streamed = sum(r.streamed for r in rows) / len(rows)
    cached = sum((r.cache_read_tokens or 0) > 0 for r in rows) / len(rows)
    assert 0.2 < streamed < 0.7 and 0.15 < cached < 0.7
    assert any((r.cache_write_1h_tokens or 0) > 0 for r in rows) and any(
        (r.reasoning_tokens or 0) > 0 for r in rows
    )
    assert any(r.status_code == 429 for r in rows) and all(
        r.cost_usd == 0 for r in rows if r.status_code != 200
    )


def test_loops_repeated_prompts_and_the_late_price_card() -> None:
    demo = Demo(CONFIG)
    rows = [r.row for r in demo.requests(validate=False)]
    counts = Counter(r.prompt_hash for r in rows)
    assert sum(1 for c in counts.values() if c > 1) > 20
    by_hash: dict[str, list[datetime]] = {}
    for r in rows:
        if counts[r.prompt_hash] >= 10:
            by_hash.setdefault(r.prompt_hash, []).append(r.started_at)
    bursts = [
        h for h, times in by_hash.items()
        if any(b - a <= timedelta(seconds=60) for a, b in zip(sorted(times), sorted(times)[9:], strict=False))
    ]  # fmt: skip
    assert bursts  # one prompt ten times within a minute: a loop
    grok = [r for r in rows if r.model_served == "grok-4-0709"]
    window = [r for r in grok if demo.price_change_day <= r.started_at.date() < demo.price_card_pickup_day]
    after = [r for r in grok if r.started_at.date() >= demo.price_card_pickup_day]
    assert window and after
    assert {r.price_card for r in window} == {demo.card_labels[0]} and {r.price_card for r in after} == {
        demo.card_labels[1]
    }


def test_billed_lines_differ_by_cents_except_the_price_change_month() -> None:
    demo = Demo(CONFIG)
    billing = demo.billing()
    logged: dict[tuple[str, str], Decimal] = Counter()
    for request in demo.requests(validate=False):
        row = request.row
        logged[(row.provider, row.started_at.strftime("%Y-%m"))] += row.cost_usd or Decimal(0)
    billed: dict[tuple[str, str], Decimal] = Counter()
    for line in billing.lines():
        billed[(line.provider, line.day.strftime("%Y-%m"))] += line.amount
    for statement in billing.statements():
        billed[(statement.provider, statement.period.strftime("%Y-%m"))] += statement.amount
    change = (PROVIDERS[3], demo.price_change_day.strftime("%Y-%m"))
    for key, amount in billed.items():
        variance = abs(logged[key] - amount) / amount * 100
        assert (variance > 2) == (key == change), (key, logged[key], amount)


def test_chunks_are_lazy_and_a_ten_million_row_config_starts_at_once() -> None:
    big = Demo(DemoConfig(seed=1, requests=10_000_000, days=90, until=CONFIG.until, chunk_size=50_000))
    chunks = big.chunks()
    first = next(chunks)
    assert len(first) == 50_000
    assert first.started_ms[0] >= int(big.config.since.timestamp() * 1000)
    assert np.all(np.diff(first.started_ms[first.prompt_hash != first.prompt_hash[0]]) > -3_600_000)
    assert len(MODELS) == 11


def test_the_demo_costs_are_the_one_cost_model_s() -> None:
    """The demo prices its millions of rows with vectorised integers, from the catalogue's rate rows; every
    cost it logs and bills is what `halton_meter.pricing` says for that call (the meter's catalogue until the
    meter picked up the cut, the demo's catalogue for what the provider billed)."""
    from halton_meter.catalogue import parse_catalogue
    from halton_meter.pricing import CallFacts, PriceBook

    demo = Demo(CONFIG)
    provider_book = PriceBook(catalogue=demo.catalogue)
    meter_book = PriceBook(catalogue=parse_catalogue(demo.packaged_catalogue_document))
    pickup = datetime.combine(demo.price_card_pickup_day, datetime.min.time(), UTC)
    checked = 0
    for chunk in demo.chunks():
        for i in range(len(chunk)):
            if int(chunk.status[i]) != 200 or int(chunk.logged_nano[i]) < 0:
                continue
            model = MODELS[int(chunk.model[i])]
            started = datetime.fromtimestamp(int(chunk.started_ms[i]) / 1000, UTC)
            facts = CallFacts(
                provider=model.provider,
                models=(model.served,),
                started_at=started,
                input_tokens=int(chunk.input_tokens[i]),
                output_tokens=int(chunk.output_tokens[i]),
                cache_read_tokens=int(chunk.cache_read[i]),
                cache_write_tokens=int(chunk.cache_write[i]),
                cache_write_1h_tokens=int(chunk.cache_write_1h[i]),
            )
            billed = provider_book.price_facts(facts).cost_usd
            logged = (meter_book if started < pickup else provider_book).price_facts(facts).cost_usd
            assert billed == Decimal(int(chunk.true_nano[i])).scaleb(-9), (model.key, started)
            assert logged == Decimal(int(chunk.logged_nano[i])).scaleb(-9), (model.key, started)
            checked += 1
    assert checked > 5_000
