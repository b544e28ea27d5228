"""`halton-meter rates show`: the catalogue in force, every model's rates with date and source."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from halton_meter.catalogue import install_catalogue, load_catalogue
from halton_meter.cli import main
from halton_meter.testing.factories import catalogue_document

run = CliRunner().invoke

# Models the catalogue of issue 17 added (none was priced by genai-prices 0.0.61), with the standard
# rates of the committed rates.json, USD per million tokens.
NEW_MODELS = {
    "anthropic/claude-sonnet-5": {"input": "2", "output": "10", "cache_read": "0.2", "cache_write_1h": "4"},
    "openai/gpt-6-sol": {"input": "2", "output": "10", "cache_read": "0.2"},
    "gemini/gemini-3.5-flash": {"input": "1.5", "output": "9", "cache_read": "0.15"},
    "xai/grok-4.5": {"input": "2", "output": "6", "cache_read": "0.3"},
}


@pytest.mark.parametrize("model", sorted(NEW_MODELS))
def test_new_models_are_priced(home, model):
    result = run(main, ["rates", "show", model, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["catalogue_version"] == load_catalogue().version
    assert f"{document['provider']}/{document['id']}" == model
    rates = document["standard"]["rates"]
    assert {key: rates[key] for key in NEW_MODELS[model]} == NEW_MODELS[model]
    assert document["standard"]["source"].startswith("genai-prices")


def test_a_model_resolves_as_the_meter_resolves_it(home):
    dated = json.loads(run(main, ["rates", "show", "anthropic/claude-sonnet-4-6-20260101", "--json"]).output)
    assert dated["id"] == "claude-sonnet-4-6"
    text = run(main, ["rates", "show", "openai/gpt-6-sol"]).output
    assert "openai/gpt-6-sol (GPT-6 Sol)" in text
    assert "above 272,000 prompt tokens: input $4, output $15" in text
    assert "per-call fees: file search $2.5 per 1,000, web search $10 per 1,000" in text
    assert "region us: every token rate multiplied by 1.1 (litellm 1.110.2)" in text


def test_without_a_model_it_lists_the_catalogue(home):
    catalogue = load_catalogue()
    document = json.loads(run(main, ["rates", "show", "--json"]).output)
    assert document["version"] == catalogue.version
    assert document["models_per_provider"] == dict(sorted(catalogue.providers().items()))
    sonnet = next(m for m in document["models"] if m["id"] == "claude-sonnet-5")
    assert (sonnet["input"], sonnet["output"], sonnet["from"]) == ("2", "10", None)
    text = run(main, ["rates", "show"]).output
    assert catalogue.version in text and "genai-prices 0.2.5 (primary)" in text and "anthropic 30" in text


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("openai/gpt-6", "openai/gpt-6 is not in price catalogue"),
        ("mistral/large", "unknown provider 'mistral'"),
        ("claude-sonnet-5", "give the model as PROVIDER/MODEL"),
    ],
)
def test_an_unknown_model_exits_2_naming_it(home, argument, expected):
    result = run(main, ["rates", "show", argument])
    assert result.exit_code == 2
    assert expected in result.output
    if argument == "openai/gpt-6":
        assert "did you mean openai/gpt-6-" in result.output


def test_an_installed_catalogue_is_the_one_shown(home):
    install_catalogue(home.catalogue, catalogue_document())
    document = json.loads(run(main, ["rates", "show", "anthropic/test-sonnet-20260101", "--json"]).output)
    assert document["catalogue_version"] == "2026-12-06+000000000000"
    assert run(main, ["rates", "show", "anthropic/claude-sonnet-5"]).exit_code == 2
