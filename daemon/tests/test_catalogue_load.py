"""The catalogue loader and the committed catalogue: typed frozen entries, and the models issue 17 names."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from halton_meter.catalogue import Catalogue, CatalogueError, ModelEntry, load_catalogue, parse_catalogue
from halton_meter.testing.factories import catalogue_document

TODAY = date(2026, 12, 6)
D = Decimal


@pytest.fixture(scope="module")
def committed() -> Catalogue:
    return load_catalogue()


def model(catalogue: Catalogue, provider: str, name: str) -> ModelEntry:
    found = catalogue.find(provider, name)
    assert found is not None, f"{provider}/{name} does not resolve in catalogue {catalogue.version}"
    return found


# -- the loader ----------------------------------------------------------------------------------


def test_entries_are_typed_decimals_dates_and_frozen() -> None:
    entry = parse_catalogue(catalogue_document()).models[0]
    first, second = entry.prices
    assert (first.effective_from, second.effective_from) == (None, date(2026, 3, 13))
    assert first.rates.input == D("3") and isinstance(first.rates.input, Decimal)
    assert first.rates.cache_write_1h is None
    assert first.tiers[0].above == 200000 and first.tiers[0].rates.output == D("22.5")
    assert first.fees_per_1k["web_search"] == D("10")
    assert entry.regions["us"].multiplier == D("1.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.modes["flex"] = ()  # type: ignore[index]


def test_the_price_in_force_follows_the_dates() -> None:
    entry = parse_catalogue(catalogue_document()).models[0]
    assert entry.price_on(date(2026, 3, 12)).rates.input == D("3")
    assert entry.price_on(date(2026, 3, 13)).rates.input == D("2")
    # A day before the mode's first dated entry gets that entry, as for standard prices.
    assert entry.mode_on("batch", date(2026, 10, 13)).rates.input == D("1")  # type: ignore[union-attr]
    assert entry.mode_on("batch", date(2026, 10, 14)).rates.input == D("1")  # type: ignore[union-attr]
    assert entry.mode_on("flex", TODAY) is None


def test_aliases_and_dated_ids_resolve_case_insensitively() -> None:
    catalogue = parse_catalogue(catalogue_document())
    for name in ("test-sonnet", "TEST-SONNET", "test-sonnet-20260101"):
        assert model(catalogue, "anthropic", name).id == "test-sonnet"
    assert catalogue.find("anthropic", "test-sonnet-2026") is None
    assert catalogue.find("openai", "test-sonnet") is None


def test_a_bad_file_is_refused_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "rates.json"
    with pytest.raises(CatalogueError, match=r"cannot read the price catalogue .*rates\.json"):
        load_catalogue(missing)
    missing.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"rates\.json is not JSON"):
        load_catalogue(missing)
    doc = catalogue_document()
    doc["models"][0]["prices"][0]["rates"]["input"] = "-3"
    missing.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"models\[0\] anthropic/test-sonnet: prices\[0\]\.rates\.input"):
        load_catalogue(missing)


# -- the committed catalogue ----------------------------------------------------------------------


def test_the_committed_catalogue_validates_and_names_its_sources(committed: Catalogue) -> None:
    assert committed.format == 1
    assert committed.version[:10] == date.fromisoformat(committed.version[:10]).isoformat()
    assert len(committed.version.split("+")[1]) == 12
    sources = {src.name: src.version for src in committed.generated_from}
    assert sources["genai-prices"].startswith("0.2.")
    assert "litellm" in sources
    assert set(committed.providers()) == {"anthropic", "openai", "gemini", "xai"}


def test_every_model_has_an_input_rate_and_only_embeddings_lack_output(committed: Catalogue) -> None:
    for entry in committed.models:
        for price in entry.prices:
            assert price.rates.input is not None, entry.key
            assert price.rates.output is not None or "embedding" in entry.id, entry.key


@pytest.mark.parametrize(
    ("provider", "name", "model_id"),
    [
        ("anthropic", "claude-sonnet-5", "claude-sonnet-5"),
        ("anthropic", "claude-sonnet-5-5", "claude-sonnet-5-5"),  # the newest Claude 5 Sonnet in the data
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"),
        (
            "openai",
            "gpt-6-sol",
            "gpt-6-sol",
        ),  # the data has no bare "gpt-6": the family is astra/sol/luna/...
        ("gemini", "gemini-3.5-flash", "gemini-3.5-flash"),
        ("xai", "grok-4.5", "grok-4.5"),
        ("xai", "grok-4.3", "grok-4.3"),
        ("openai", "gpt-5.5", "gpt-5.5"),
    ],
)
def test_models_the_issue_names_are_present_and_priced(
    committed: Catalogue, provider: str, name: str, model_id: str
) -> None:
    entry = model(committed, provider, name)
    assert entry.id == model_id
    price = entry.price_on(TODAY)
    assert price.rates.input is not None and price.rates.input > 0
    assert price.rates.output is not None and price.rates.output > price.rates.input
    assert price.source


def test_grok_4_3_doubles_above_200k_tokens(committed: Catalogue) -> None:
    price = model(committed, "xai", "grok-4.3").price_on(TODAY)
    (tier,) = price.tiers
    assert 199_999 <= tier.above <= 200_000
    assert tier.rates.input == 2 * price.rates.input  # type: ignore[operator]
    assert tier.rates.output == 2 * price.rates.output  # type: ignore[operator]


def test_gpt_5_5_has_its_tier_above_272k(committed: Catalogue) -> None:
    price = model(committed, "openai", "gpt-5.5").price_on(TODAY)
    assert [tier.above for tier in price.tiers] == [272_000]
    assert price.tiers[0].rates.input == 2 * price.rates.input  # type: ignore[operator]


def test_gpt_4o_2024_05_13_has_its_own_price_not_gpt_4o(committed: Catalogue) -> None:
    dated = model(committed, "openai", "gpt-4o-2024-05-13")
    plain = model(committed, "openai", "gpt-4o")
    assert dated.id == "gpt-4o-2024-05-13" and plain.id == "gpt-4o"
    assert dated.price_on(TODAY).rates.input != plain.price_on(TODAY).rates.input


def test_anthropic_us_only_inference_is_1_1x_from_claude_4_6(committed: Catalogue) -> None:
    for name in ("claude-sonnet-4-6", "claude-opus-4-6", "claude-sonnet-5", "claude-opus-5-5"):
        assert model(committed, "anthropic", name).regions["us"].multiplier == D("1.1"), name
    for name in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"):
        assert "us" not in model(committed, "anthropic", name).regions, name


def test_batch_flex_priority_and_web_search_are_carried(committed: Catalogue) -> None:
    gpt = model(committed, "openai", "gpt-5.5")
    for mode in ("batch", "flex", "priority"):
        assert gpt.mode_on(mode, TODAY) is not None, mode
    sonnet = model(committed, "anthropic", "claude-sonnet-5")
    batch = sonnet.mode_on("batch", TODAY)
    assert batch is not None and batch.rates.input == sonnet.price_on(TODAY).rates.input / 2  # type: ignore[operator]
    assert sonnet.price_on(TODAY).fees_per_1k["web_search"] > 0
    assert sonnet.price_on(TODAY).rates.cache_write_1h is not None


def test_a_model_with_several_dated_prices_keeps_them_all(committed: Catalogue) -> None:
    sonnet = model(committed, "anthropic", "claude-sonnet-4-6")
    assert len(sonnet.prices) >= 2
    first, later = sonnet.prices[0], sonnet.prices[-1]
    assert later.effective_from is not None
    assert sonnet.price_on(later.effective_from) is later
    assert first.tiers and not later.tiers  # the 200k tier ended when the flat 1M price began


def test_a_model_only_litellm_prices_is_marked_so(committed: Catalogue) -> None:
    from_litellm = [entry for entry in committed.models if entry.source.startswith("litellm")]
    assert from_litellm
    for entry in from_litellm:
        assert all(price.source.startswith("litellm") for price in entry.prices), entry.key
