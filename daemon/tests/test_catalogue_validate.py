"""The catalogue validator: each kind of bad entry is refused with a message naming the entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from halton_meter.catalogue import CatalogueError, validate_catalogue
from halton_meter.testing.factories import catalogue_document, catalogue_model

ENTRY = "models[0] anthropic/test-sonnet"


def refused(doc: Any) -> str:
    with pytest.raises(CatalogueError) as caught:
        validate_catalogue(doc)
    return str(caught.value)


def bent(change: Any) -> dict[str, Any]:
    """The factory catalogue with ``change(model)`` applied to its one model."""
    doc = catalogue_document()
    change(doc["models"][0])
    return doc


def test_the_factory_catalogue_is_valid() -> None:
    validate_catalogue(catalogue_document())


def test_a_price_without_input_is_refused() -> None:
    doc = bent(lambda m: m["prices"][1]["rates"].pop("input"))
    assert f"{ENTRY}: prices[1].rates: missing input" in refused(doc)


def test_a_price_without_output_is_allowed_embeddings_have_none() -> None:
    validate_catalogue(bent(lambda m: m["prices"][1]["rates"].pop("output")))


def test_a_negative_amount_is_refused() -> None:
    doc = bent(lambda m: m["prices"][0]["rates"].update(cache_read="-0.3"))
    assert f"{ENTRY}: prices[0].rates.cache_read: '-0.3' is negative" in refused(doc)


@pytest.mark.parametrize("amount", ["1e3", "abc", "3,50", " 3", "NaN", ""])
def test_a_non_decimal_amount_is_refused(amount: str) -> None:
    doc = bent(lambda m: m["prices"][0]["rates"].update(output=amount))
    assert f"{ENTRY}: prices[0].rates.output: {amount!r} is not a plain decimal amount" in refused(doc)


@pytest.mark.parametrize("amount", [3, 2.5, None, True])
def test_an_amount_given_as_a_json_number_is_refused(amount: Any) -> None:
    doc = bent(lambda m: m["prices"][0]["rates"].update(input=amount))
    assert f"{ENTRY}: prices[0].rates.input: {amount!r} must be a decimal string" in refused(doc)


def test_tier_thresholds_that_do_not_increase_are_refused() -> None:
    def two_tiers(model: dict[str, Any]) -> None:
        model["prices"][0]["tiers"] = [
            {"above": 200000, "rates": {"input": "6"}},
            {"above": 128000, "rates": {"input": "9"}},
        ]

    message = refused(bent(two_tiers))
    assert (
        f"{ENTRY}: prices[0].tiers[1].above: tier threshold 128000 is not above the previous one" in message
    )


@pytest.mark.parametrize("above", [0, -5, "200000", 1.5])
def test_a_tier_threshold_that_is_not_a_positive_count_is_refused(above: Any) -> None:
    doc = bent(lambda m: m["prices"][0]["tiers"][0].update(above=above))
    assert f"{ENTRY}: prices[0].tiers[0].above: must be a positive whole number" in refused(doc)


def test_an_unknown_provider_is_refused() -> None:
    doc = catalogue_document(**{"gpt-x": catalogue_model(provider="azure")})
    assert "models[0] azure/gpt-x: unknown provider 'azure'" in refused(doc)


def test_dates_out_of_order_are_refused() -> None:
    doc = bent(lambda m: m["modes"]["batch"].append({"from": "2026-01-01", "source": "t", "rates": {}}))
    message = refused(doc)
    assert f"{ENTRY}: modes.batch[1]: dates out of order: from 2026-01-01 is not after 2026-10-14" in message


def test_the_same_start_date_twice_is_refused() -> None:
    doc = bent(lambda m: m["prices"].append(copy.deepcopy(m["prices"][1])))
    assert f"{ENTRY}: prices[2]: dates out of order" in refused(doc)


def test_only_the_first_entry_may_be_undated() -> None:
    doc = bent(lambda m: m["prices"][1].update({"from": None}))
    assert f"{ENTRY}: prices[1]: only the first entry may have no start date" in refused(doc)


def test_a_date_that_is_not_iso_is_refused() -> None:
    doc = bent(lambda m: m["prices"][1].update({"from": "13/03/2026"}))
    assert f"{ENTRY}: prices[1]: from '13/03/2026' is not an ISO date" in refused(doc)


def test_a_duplicate_model_is_refused_whatever_its_case() -> None:
    doc = catalogue_document()
    doc["models"].append({**catalogue_model(), "id": "Test-Sonnet"})
    assert "models[1] anthropic/Test-Sonnet: duplicate model (also models[0])" in refused(doc)


def test_the_same_id_under_two_providers_is_not_a_duplicate() -> None:
    doc = catalogue_document()
    doc["models"].append({**catalogue_model(provider="openai"), "id": "test-sonnet"})
    validate_catalogue(doc)


def test_a_misspelt_key_is_refused_not_ignored() -> None:
    doc = bent(lambda m: m["prices"][0]["rates"].update(inptu="3"))
    assert f"{ENTRY}: prices[0].rates: unknown rate 'inptu'" in refused(doc)


def test_an_unknown_mode_fee_and_bad_regex_are_each_named() -> None:
    def three(model: dict[str, Any]) -> None:
        model["modes"]["turbo"] = [{"from": None, "source": "t", "rates": {"input": "1"}}]
        model["prices"][0]["fees_per_1k"]["code_run"] = "1"
        model["match"] = {"regex": "claude-("}

    message = refused(bent(three))
    assert f"{ENTRY}: modes.turbo: unknown mode" in message
    assert f"{ENTRY}: prices[0].fees_per_1k: unknown fee 'code_run'" in message
    assert f"{ENTRY}: match.regex: 'claude-(' does not compile" in message
    assert "(3 problems)" in message


def test_a_region_multiplier_must_be_above_zero() -> None:
    doc = bent(lambda m: m["regions"]["us"].update(multiplier="0.0"))
    assert f"{ENTRY}: regions.us.multiplier: '0.0' must be above zero" in refused(doc)


def test_an_entry_without_a_source_is_refused() -> None:
    doc = bent(lambda m: m["prices"][0].pop("source"))
    assert f"{ENTRY}: prices[0]: source must say where the price comes from" in refused(doc)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(format=2), "catalogue: format is 2; this meter reads format 1"),
        (lambda d: d.update(version=""), "catalogue: version must be a non-empty string"),
        (lambda d: d.update(generated_from=[]), "catalogue: generated_from must list the sources"),
        (lambda d: d["generated_from"][0].pop("version"), "generated_from[0]: name and version must be"),
        (lambda d: d.update(models=[]), "catalogue: models must be a non-empty list"),
    ],
)
def test_the_header_is_checked(change: Any, expected: str) -> None:
    doc = catalogue_document()
    change(doc)
    assert expected in refused(doc)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert "the catalogue must be a JSON object" in refused([])


@pytest.mark.parametrize("pattern", ["^claude-(?=x)", "(?<!a)claude", r"^(a)\1$", "^(?!a)b(?!c)"])
def test_a_regex_the_warehouse_cannot_run_is_refused(pattern: str) -> None:
    doc = bent(lambda m: m.update(match={"regex": pattern}))
    assert "RE2 cannot run" in refused(doc)


def test_a_whole_pattern_negative_lookahead_is_allowed() -> None:
    validate_catalogue(
        bent(lambda m: m.update(match={"all": [{"starts_with": "x"}, {"regex": "^(?!.*-tts)"}]}))
    )
