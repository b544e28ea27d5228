"""scripts/prices/generate.py: LiteLLM's map read exactly, the merge rules applied, the diff printed.

Only the parts that do not need genai-prices 0.2.x run here (the workspace holds 0.0.61); the
genai-prices side is exercised by running the generator for real (README, "Prices").
"""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from halton_meter.catalogue import parse_catalogue

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prices" / "generate.py"
TODAY = date(2026, 12, 6)


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prices_generate", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def genai_model(model_id: str, provider: str = "anthropic", **rates: str) -> dict[str, Any]:
    """A model as the generator builds it from genai-prices."""
    return {
        "provider": provider,
        "id": model_id,
        "source": "genai-prices 0.2.5",
        "match": {"any": [{"starts_with": model_id}]},
        "prices": [
            {"from": None, "source": "genai-prices 0.2.5", "rates": {"input": "3", "output": "15", **rates}}
        ],
    }


SONNET_46 = {
    "litellm_provider": "anthropic",
    "input_cost_per_token": 3e-06,
    "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 3e-07,
    "cache_creation_input_token_cost": 3.75e-06,
    "cache_creation_input_token_cost_above_1hr": 6e-06,
    "input_cost_per_token_batches": 1.5e-06,
    "output_cost_per_token_batches": 7.5e-06,
    "input_cost_per_token_above_200k_tokens": 6e-06,
    "cache_creation_input_token_cost_above_1hr_above_272k_tokens": 1.2e-05,
    "search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_high": 0.01},
    "provider_specific_entry": {"us": 1.1, "fast": 2.0},
    "max_input_tokens": 1000000,
}


def test_litellm_rates_become_exact_decimal_strings_per_million(gen: ModuleType) -> None:
    standard, modes, regions = gen.litellm_prices(SONNET_46)
    assert standard["rates"] == {
        "input": "3",
        "output": "15",
        "cache_read": "0.3",
        "cache_write_5m": "3.75",
        "cache_write_1h": "6",
    }
    assert standard["tiers"] == [
        {"above": 200000, "rates": {"input": "6"}},
        {"above": 272000, "rates": {"cache_write_1h": "12"}},
    ]
    assert standard["fees_per_1k"] == {"web_search": "10"}
    assert modes == {"batch": {"rates": {"input": "1.5", "output": "7.5"}}}
    assert regions == [("us", "1.1")]  # "fast" is a speed multiplier, not a region


def test_litellm_entries_keep_the_four_providers_token_models_once(gen: ModuleType) -> None:
    price_map = {
        "sample_spec": {"litellm_provider": "one of …"},
        "xai/grok-9": {
            "litellm_provider": "xai",
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06,
        },
        "grok-9": {"litellm_provider": "xai", "input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06},
        "text-embedding-9": {"litellm_provider": "openai", "input_cost_per_token": 1e-07},
        "azure/gpt-9": {
            "litellm_provider": "azure",
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 1e-06,
        },
        "ft:gpt-9:org": {
            "litellm_provider": "openai",
            "input_cost_per_token": 1e-06,
            "output_cost_per_token": 1e-06,
        },
    }
    entries = gen.litellm_entries(price_map)
    assert list(entries) == [("xai", "grok-9")]
    assert entries[("xai", "grok-9")][0] == "grok-9"  # sorted keys: the bare id comes first


def test_the_merge_rules(gen: ModuleType) -> None:
    models = [
        genai_model("claude-sonnet-4-6", cache_read="0.25"),
        genai_model("claude-old"),
    ]
    models[1]["modes"] = {"batch": [{"from": "2026-10-14", "source": "genai-prices 0.2.5", "rates": {}}]}
    dropped = [genai_model("text-embedding-9", provider="openai")]
    litellm = {
        ("anthropic", "claude-sonnet-4-6-20260101"): ("claude-sonnet-4-6-20260101", SONNET_46),
        ("anthropic", "claude-old"): ("claude-old", {**SONNET_46, "provider_specific_entry": {"us": 1.2}}),
        ("anthropic", "claude-new"): ("claude-new", SONNET_46),
        ("openai", "text-embedding-9"): ("text-embedding-9", {**SONNET_46, "litellm_provider": "openai"}),
    }
    merge = gen.Merge(models, dropped, "1.110.2")
    merge.run(litellm, TODAY)
    notes = {text: rule for rule, text in merge.disagreements}

    sonnet, old, new = models
    # R1: genai-prices keeps its rate, the disagreement is printed.
    assert sonnet["prices"][0]["rates"]["cache_read"] == "0.25"
    assert (
        notes[
            "anthropic/claude-sonnet-4-6 vs claude-sonnet-4-6-20260101: cache_read genai-prices 0.25 / LiteLLM 0.3"
        ]
        == "R1"
    )
    # R2: a model only LiteLLM knows is added, marked as LiteLLM's, matched exactly.
    assert new["source"] == "litellm 1.110.2" and new["match"] == {"equals": "claude-new"}
    assert notes["anthropic/claude-new: only LiteLLM prices it (claude-new); added"] == "R2"
    # R3: a mode genai-prices lacks is filled; one it has (even empty: standard rates) is not.
    assert sonnet["modes"]["batch"] == [
        {"from": None, "source": "litellm 1.110.2", "rates": {"input": "1.5", "output": "7.5"}}
    ]
    assert old["modes"]["batch"][0]["source"] == "genai-prices 0.2.5"
    # R4: LiteLLM's regional multiplier is carried with its source.
    assert sonnet["regions"] == {"us": {"multiplier": "1.1", "source": "litellm 1.110.2"}}
    assert old["regions"]["us"]["multiplier"] == "1.2"
    # R5: a tier only LiteLLM has is reported, not used.
    assert "tiers" not in sonnet["prices"][0]
    assert (
        notes[
            "anthropic/claude-sonnet-4-6 vs claude-sonnet-4-6-20260101: tier above 200000 only in LiteLLM; not used"
        ]
        == "R5"
    )
    # A model genai-prices knows but cannot price per token is not refilled from LiteLLM.
    assert [m["id"] for m in models] == ["claude-sonnet-4-6", "claude-old", "claude-new"]
    # What comes out is a valid catalogue.
    parse_catalogue(
        {"format": 1, "version": "v", "generated_from": [{"name": "t", "version": "1"}], "models": models}
    )


def test_us_only_inference_is_set_from_claude_4_6_on(gen: ModuleType) -> None:
    models = [
        genai_model(i) for i in ("claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-5", "claude-3-5-haiku")
    ]
    models[2]["regions"] = {"us": {"multiplier": "1.1", "source": "litellm 1.110.2"}}
    notes = gen.apply_published_rules(models)
    assert [m.get("regions", {}).get("us", {}).get("multiplier") for m in models] == [
        None,
        "1.1",
        "1.1",
        None,
    ]
    assert models[2]["regions"]["us"]["source"] == "litellm 1.110.2"  # agreeing source kept
    assert notes == [("R6", "anthropic/claude-opus-4-6: US-only inference x1.1 (no source had it); set")]


def test_the_litellm_map_is_read_from_the_wheel_with_its_version(gen: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / "litellm-1.110.2-cp310-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("litellm/model_prices_and_context_window_backup.json", json.dumps({"x": {}}))
    assert gen.read_litellm(wheel, None) == ("1.110.2", {"x": {}})


def test_the_content_hash_ignores_key_order(gen: ModuleType) -> None:
    a = genai_model("claude-a")
    b = dict(reversed(list(a.items())))
    assert gen.content_hash([a]) == gen.content_hash([b])
    assert len(gen.content_hash([a])) == 12
