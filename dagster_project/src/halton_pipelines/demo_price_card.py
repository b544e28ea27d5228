"""The genai-prices card the demo generator still prices its synthetic calls with (`halton_pipelines.demo_data`).

The warehouse no longer reads it: it re-prices with the catalogue's rate rows (`halton_pipelines.price_card`,
`raw.rate_rows`). It stays only until the demo prices with the one cost model (`halton_meter.pricing`,
issue 17); then this module goes. Each model becomes one row per price period (a `StartDateConstraint`
starts a new period), with the card's match rules kept so the demo resolves a served name as genai-prices does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import version

from genai_prices import types as gp

log = logging.getLogger(__name__)

# Our provider names (as the meter writes them) and the ids `genai-prices` files them under.
GENAI_PROVIDER_IDS: dict[str, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google",
    "xai": "x-ai",
}

# Batch APIs bill half the standard rate at Anthropic (Message Batches), OpenAI (Batch API) and Google
# (Gemini Batch Mode). The card has no batch prices; xAI publishes none we rely on, so no discount there.
BATCH_MULTIPLIERS: dict[str, Decimal | None] = {
    "anthropic": Decimal("0.5"),
    "openai": Decimal("0.5"),
    "gemini": Decimal("0.5"),
    "xai": None,
}

# Anthropic bills 1-hour cache writes at twice the base input price (5-minute writes are the card's
# cache_write price, 1.25x). The card has no separate 1-hour price.
ANTHROPIC_1H_WRITE_FACTOR = Decimal(2)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CARD_SOURCE = "genai-prices"

_MATCH_KINDS = {
    gp.ClauseEquals: ("equals", "equals"),
    gp.ClauseStartsWith: ("starts_with", "starts_with"),
    gp.ClauseEndsWith: ("ends_with", "ends_with"),
    gp.ClauseContains: ("contains", "contains"),
}


class PriceCardError(ValueError):
    """A price in the card cannot be represented as a `PriceRow`."""


@dataclass(frozen=True)
class PriceRow:
    """A model's prices (USD per million tokens) for one period."""

    provider: str
    model: str
    valid_from: datetime
    match_priority: int
    match_rules: tuple[tuple[str, str], ...]
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    tier_threshold_tokens: int | None = None
    input_mtok_above: Decimal | None = None
    cache_read_mtok_above: Decimal | None = None
    cache_write_mtok_above: Decimal | None = None
    cache_write_1h_mtok_above: Decimal | None = None
    output_mtok_above: Decimal | None = None
    requests_kusd: Decimal | None = None
    batch_multiplier: Decimal | None = None
    valid_to: datetime | None = None
    card: str = ""
    source: str = CARD_SOURCE
    pulled_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "pulled_at"]

    def values(self) -> list[object]:
        return [getattr(self, name) for name in self.columns()]


def card_name() -> str:
    return f"genai-prices {version('genai-prices')}"


def card_rows(providers: Iterable[str] = GENAI_PROVIDER_IDS) -> list[PriceRow]:
    """Every model of `providers` in the bundled `genai-prices` data, one row per price period.

    Models whose prices cannot be represented (time-of-day prices, several tiers) are left out and logged:
    requests to them stay unpriced in the warehouse rather than priced wrongly.
    """
    from genai_prices.data import providers as genai_providers

    by_id = {p.id: p for p in genai_providers}
    name = card_name()
    rows: list[PriceRow] = []
    for provider in providers:
        genai_id = GENAI_PROVIDER_IDS[provider]
        card_provider = by_id.get(genai_id)
        if card_provider is None:
            raise PriceCardError(f"genai-prices has no provider {genai_id!r} (for {provider!r})")
        for priority, model in enumerate(card_provider.models):
            try:
                rows.extend(model_rows(provider, model, priority, card=name))
            except PriceCardError as error:
                log.info("price card: leaving out %s/%s: %s", provider, model.id, error)
    return rows


def model_rows(provider: str, model: gp.ModelInfo, priority: int, *, card: str) -> list[PriceRow]:
    """The price periods of one card model as rows (valid_to left open: staging closes each period)."""
    rules = tuple(match_rules(model.match))
    periods: list[tuple[datetime, gp.ModelPrice]] = []
    if isinstance(model.prices, gp.ModelPrice):
        periods.append((EPOCH, model.prices))
    else:
        for conditional in model.prices:
            constraint = conditional.constraint
            if constraint is None:
                periods.append((EPOCH, conditional.prices))
            elif isinstance(constraint, gp.StartDateConstraint):
                periods.append((_day_start(constraint.start_date), conditional.prices))
            else:
                raise PriceCardError(f"{type(constraint).__name__} prices are not supported")
    return [
        price_row(provider, model.id, valid_from, prices, priority=priority, rules=rules, card=card)
        for valid_from, prices in sorted(periods, key=lambda period: period[0])
    ]


def price_row(
    provider: str,
    model: str,
    valid_from: datetime,
    prices: gp.ModelPrice,
    *,
    priority: int,
    rules: Sequence[tuple[str, str]],
    card: str,
) -> PriceRow:
    if prices.input_mtok is None:
        raise PriceCardError("no input token price")
    threshold = _tier_threshold(
        prices.input_mtok, prices.cache_read_mtok, prices.cache_write_mtok, prices.output_mtok
    )
    base = {
        name: _base(getattr(prices, name)) for name in ("input_mtok", "cache_read_mtok", "cache_write_mtok")
    }
    above = {
        name: _above(getattr(prices, name)) for name in ("input_mtok", "cache_read_mtok", "cache_write_mtok")
    }
    write_1h = write_1h_above = None
    if provider == "anthropic":
        write_1h = base["input_mtok"] * ANTHROPIC_1H_WRITE_FACTOR
        if threshold is not None and above["input_mtok"] is not None:
            write_1h_above = above["input_mtok"] * ANTHROPIC_1H_WRITE_FACTOR
    # A model with no output price (embeddings) produces no output tokens: price them at zero.
    output_base = _base(prices.output_mtok) or Decimal(0)
    assert base["input_mtok"] is not None
    return PriceRow(
        provider=provider,
        model=model,
        valid_from=valid_from,
        match_priority=priority,
        match_rules=tuple(rules),
        input_mtok=base["input_mtok"],
        output_mtok=output_base,
        cache_read_mtok=base["cache_read_mtok"],
        cache_write_mtok=base["cache_write_mtok"],
        cache_write_1h_mtok=write_1h,
        tier_threshold_tokens=threshold,
        input_mtok_above=above["input_mtok"] if threshold is not None else None,
        cache_read_mtok_above=above["cache_read_mtok"] if threshold is not None else None,
        cache_write_mtok_above=above["cache_write_mtok"] if threshold is not None else None,
        cache_write_1h_mtok_above=write_1h_above,
        output_mtok_above=_above(prices.output_mtok) if threshold is not None else None,
        requests_kusd=prices.requests_kcount,
        batch_multiplier=BATCH_MULTIPLIERS.get(provider),
        card=card,
    )


def match_rules(match: gp.MatchLogic) -> list[tuple[str, str]]:
    """Flatten a card model's match logic (an OR of simple clauses) into (kind, value) pairs."""
    if isinstance(match, gp.ClauseOr):
        return [rule for clause in match.or_ for rule in match_rules(clause)]
    for clause_type, (kind, attribute) in _MATCH_KINDS.items():
        if isinstance(match, clause_type):
            return [(kind, getattr(match, attribute).lower())]
    raise PriceCardError(f"match clause {type(match).__name__} is not supported")


def _tier_threshold(*prices: Decimal | gp.TieredPrices | None) -> int | None:
    starts = set()
    for price in prices:
        if isinstance(price, gp.TieredPrices):
            if len(price.tiers) != 1:
                raise PriceCardError(f"{len(price.tiers)} price tiers (one is supported)")
            starts.add(price.tiers[0].start)
    if len(starts) > 1:
        raise PriceCardError(f"price tiers start at different token counts: {sorted(starts)}")
    return starts.pop() if starts else None


def _base(price: Decimal | gp.TieredPrices | None) -> Decimal | None:
    return price.base if isinstance(price, gp.TieredPrices) else price


def _above(price: Decimal | gp.TieredPrices | None) -> Decimal | None:
    return price.tiers[0].price if isinstance(price, gp.TieredPrices) else price


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
