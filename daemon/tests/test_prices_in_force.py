"""The daemon's prices follow the installed catalogue: a new one prices the next call, no restart."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from halton_meter.catalogue import install_catalogue, load_catalogue
from halton_meter.prices_in_force import LivePriceBook, prices_in_force
from halton_meter.settings import load_settings
from halton_meter.testing.catalogues import edited_catalogue
from halton_meter.usage import RequestInfo, Usage

CALL = RequestInfo(
    provider="openai", endpoint="/v1/chat/completions", model_requested="gpt-mystery-9", streamed=False
)
USAGE = Usage(model_served="gpt-mystery-9", input_tokens=1000, output_tokens=100, complete=True)
AT = datetime(2027, 1, 10, tzinfo=UTC)


def test_a_newly_installed_catalogue_prices_the_next_call(home):
    live = LivePriceBook(None, home.catalogue)
    before = live.price(CALL, USAGE, AT)
    assert before.cost_usd is None and load_catalogue().version in before.unpriced_reason

    install_catalogue(
        home.catalogue, edited_catalogue("v-new", new_models=[("openai", "gpt-mystery-9", "1", "2")])
    )
    after = live.price(CALL, USAGE, AT, status_code=200)
    assert after.cost_usd == Decimal("0.0012") and after.price_card.startswith("catalogue v-new:")
    assert live.version == "catalogue v-new"

    install_catalogue(
        home.catalogue, edited_catalogue("v-newer", new_models=[("openai", "gpt-mystery-9", "2", "2")])
    )
    assert live.price(CALL, USAGE, AT).cost_usd == Decimal("0.0022")
    assert prices_in_force(load_settings(home.home)).version == "catalogue v-newer"


def test_a_broken_installed_file_prices_with_the_packaged_catalogue_as_a_restart_would(home):
    install_catalogue(
        home.catalogue, edited_catalogue("v-new", new_models=[("openai", "gpt-mystery-9", "1", "2")])
    )
    live = LivePriceBook(None, home.catalogue)
    (home.catalogue / "rates.json").write_text("{not json")
    # active_catalogue falls back to the packaged catalogue for a broken file (and logs it).
    assert live.price(CALL, USAGE, AT).cost_usd is None
