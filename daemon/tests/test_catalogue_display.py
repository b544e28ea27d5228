"""What a catalogue model costs on a day, as people read it (shared by `rates show` and the pricing page)."""

from __future__ import annotations

import json
from datetime import date

from halton_meter.catalogue import load_catalogue, parse_catalogue
from halton_meter.catalogue.display import catalogue_json, decimal_text, model_view
from halton_meter.testing.factories import catalogue_document, catalogue_model


def test_a_model_on_a_day_shows_the_entries_in_force_with_dates_and_sources() -> None:
    entry = parse_catalogue(catalogue_document()).models[0]
    before = model_view(entry, date(2026, 3, 12))
    assert before.standard.since is None and before.standard.since_text == "date unknown"
    assert before.standard.lines() == [
        "input $3, output $15, cache read $0.3, cache write 5m $3.75 per million tokens",
        "above 200,000 prompt tokens: input $6, output $22.5 per million tokens",
        "per-call fees: web search $10 per 1,000",
    ]
    # Batch is recorded from 2026-10-14, its only entry: in force before that day too, not scheduled.
    ((mode, early),) = [(m.mode, m.price) for m in before.modes]
    assert mode == "batch" and early is not None and str(early.since) == "2026-10-14"
    assert [(s.mode or "standard", str(s.price.since)) for s in before.scheduled] == [
        ("standard", "2026-03-13")
    ]

    after = model_view(entry, date(2026, 10, 14))
    assert after.standard.since_text == "from 2026-03-13"
    (batch,) = after.modes
    assert batch.price is not None and batch.price.since_text == "from 2026-10-14"
    assert after.scheduled == ()
    assert after.regions[0][0] == "us" and decimal_text(after.regions[0][1]) == "1.1"


def test_a_mode_shows_the_standard_rate_for_what_it_leaves_out() -> None:
    model = catalogue_model(
        prices=[{"from": None, "source": "s", "rates": {"input": "3", "output": "15", "cache_read": "0.3"}}],
        modes={"priority": [{"from": None, "source": "p", "rates": {"input": "6", "output": "30"}}]},
    )
    view = model_view(parse_catalogue(catalogue_document(m=model)).models[0], date(2026, 12, 6))
    assert view.to_json()["modes"]["priority"]["rates"] == {"input": "6", "output": "30", "cache_read": "0.3"}


def test_json_amounts_are_decimal_strings_never_floats() -> None:
    document = catalogue_json(load_catalogue(), date(2026, 12, 6), detail=True)
    text = json.dumps(document)

    def walk(value) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(text))
    assert "E" not in "".join(m["standard"]["rates"].get("input", "") for m in document["models"])
    assert document["version"] == load_catalogue().version
    assert sum(document["models_per_provider"].values()) == len(document["models"])
