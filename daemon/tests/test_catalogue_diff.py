"""halton_meter.catalogue.diff: models added and removed, every changed value old -> new, from when."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from halton_meter.catalogue.diff import diff_catalogues


def model(model_id: str, **rates: str) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "id": model_id,
        "source": "genai-prices 0.2.5",
        "match": {"any": [{"starts_with": model_id}]},
        "prices": [
            {"from": None, "source": "genai-prices 0.2.5", "rates": {"input": "3", "output": "15", **rates}}
        ],
    }


def test_added_removed_and_changed_values_with_their_start_dates() -> None:
    old = {"version": "v1", "models": [model("claude-a"), model("claude-b")]}
    changed = model("claude-a")
    changed["prices"].append({"from": "2027-01-01", "source": "x", "rates": {"input": "2", "output": "10"}})
    changed["prices"][0]["rates"]["input"] = "4"
    changed["regions"] = {"us": {"multiplier": "1.1", "source": "y"}}
    new = {"version": "v2", "models": [changed, model("claude-c")]}

    diff = diff_catalogues(old, new)

    assert diff.lines() == [
        "+ anthropic/claude-c",
        "- anthropic/claude-b",
        "~ anthropic/claude-a prices[2027-01-01].rates.input: (none) -> 2, from 2027-01-01",
        "~ anthropic/claude-a prices[2027-01-01].rates.output: (none) -> 10, from 2027-01-01",
        "~ anthropic/claude-a prices[2027-01-01].source: (none) -> x, from 2027-01-01",
        "~ anthropic/claude-a prices[undated].rates.input: 3 -> 4",
        "~ anthropic/claude-a regions.us.multiplier: (none) -> 1.1",
        "~ anthropic/claude-a regions.us.source: (none) -> y",
    ]
    assert diff.summary() == "catalogue v1 -> v2: 1 model added, 1 removed, 6 values changed in 1 model"
    document = diff.to_json()
    assert document["changes"][0] == {
        "model": "anthropic/claude-a",
        "path": "prices[2027-01-01].rates.input",
        "old": None,
        "new": "2",
        "effective": "2027-01-01",
    }
    json.dumps(document)  # plain data


def test_tiers_and_modes_are_keyed_by_threshold_and_date() -> None:
    old = model("claude-a")
    old["prices"][0]["tiers"] = [{"above": 200000, "rates": {"input": "6"}}]
    old["modes"] = {"batch": [{"from": "2026-10-14", "source": "s", "rates": {"input": "1.5"}}]}
    new = copy.deepcopy(old)
    new["prices"][0]["tiers"][0]["rates"]["input"] = "7"
    new["modes"]["batch"][0]["rates"]["input"] = "1.25"
    diff = diff_catalogues({"version": "a", "models": [old]}, {"version": "b", "models": [new]})
    assert diff.lines() == [
        "~ anthropic/claude-a modes.batch[2026-10-14].rates.input: 1.5 -> 1.25, from 2026-10-14",
        "~ anthropic/claude-a prices[undated].tiers[>200000].rates.input: 6 -> 7",
    ]


def test_the_packaged_catalogue_against_itself_and_against_nothing() -> None:
    doc = json.loads(resources.files("halton_meter.catalogue").joinpath("rates.json").read_text())
    same = diff_catalogues(doc, copy.deepcopy(doc))
    assert same.empty and same.summary().endswith("no price changes")
    fresh = diff_catalogues(None, doc)
    assert len(fresh.added) == len(doc["models"]) and fresh.old_version is None
