"""A catalogue as rate rows: every rate resolved, so pricing a call is a lookup and one sum.

The meter (``halton_meter.pricing``) and the warehouse (``raw.rate_rows``, re-priced by dbt in
``int_requests_priced``) price from these same rows, so the rules that turn the catalogue's compact form
into a rate live here once:

- **Periods.** One row per (model, mode, day a price starts); a row holds until the next row of the same
  model and mode. The first standard entry (``"from": null``) starts at ``EPOCH``.
- **Tiers.** ``tier_aboves[i]`` is the prompt size (cache reads and writes included) a request must be
  strictly above for the rates at index ``i``; index 0 is ``-1`` (every request). A tier's omitted rates
  are the tier below's, already filled in.
- **Modes** (``standard``, ``batch``, ``flex``, ``priority``): a mode entry replaces the standard rates it
  lists, tier by tier. Where a model has no entry for the mode:
  - ``batch`` at Anthropic, OpenAI and Gemini is half of every standard rate (each publishes its batch API
    at 50% off; xAI's discount varies by model, so xAI has no fallback);
  - ``flex`` takes the ``batch`` rates (OpenAI: flex is "priced at Batch API rates");
  - anything else has no price: the row says so (``priced`` false), and the call is unpriced, never
    under-priced at standard rates.
- **Missing rates.** A cache read or 5-minute write without a rate costs the input rate; a 1-hour write
  without one costs 2x input at Anthropic ("1-hour cache write tokens are 2 times the base input tokens
  price") and the 5-minute write rate elsewhere. Output without a rate stays None: output tokens then
  cannot be priced (embeddings have none).
- **Regions** multiply every token rate (not fees); **fees** are USD per 1,000 calls (web search).

Modality rates (audio, image, video tokens) are kept in the catalogue but not used: the meter does not yet
read per-modality token counts from the providers' usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal

from halton_meter.catalogue.entries import Catalogue, Match, ModelEntry, PriceEntry, Rates

EPOCH = date(1970, 1, 1)
MODES = ("standard", "batch", "flex", "priority")
TOKEN_RATES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
BATCH_HALF_PRICE_PROVIDERS = frozenset({"anthropic", "openai", "gemini"})
HALF = Decimal("0.5")
ONE_HOUR_WRITE_FACTOR = Decimal(2)


@dataclass(frozen=True)
class RateRow:
    """One model's resolved rates for one mode from one day, every tier (USD per million tokens)."""

    provider: str
    model: str
    mode: str
    valid_from: date
    match_priority: int
    match_rules: tuple[tuple[tuple[str, str], ...], ...]  # any of (all of (kind, value))
    priced: bool
    tier_aboves: tuple[int, ...] = (-1,)
    input: tuple[Decimal, ...] = ()
    output: tuple[Decimal | None, ...] = ()
    cache_read: tuple[Decimal, ...] = ()
    cache_write_5m: tuple[Decimal, ...] = ()
    cache_write_1h: tuple[Decimal, ...] = ()
    web_search_per_1k: Decimal | None = None
    regions: tuple[tuple[str, Decimal], ...] = ()
    rules: tuple[str, ...] = ()  # the fallbacks above that made these rates, named on the price card
    source: str = ""
    catalogue: str = ""

    def tier_index(self, prompt_tokens: int) -> int:
        """Index of the tier a request with ``prompt_tokens`` is priced at (tiers increase)."""
        return sum(1 for above in self.tier_aboves if prompt_tokens > above) - 1

    def region_multiplier(self, region: str | None) -> Decimal | None:
        """The multiplier for ``region``, or None when the model has none for it (standard rates)."""
        if region:
            for name, multiplier in self.regions:
                if name == region.lower():
                    return multiplier
        return None

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def rate_rows(catalogue: Catalogue) -> list[RateRow]:
    """Every model of ``catalogue`` as rate rows, in catalogue order (``match_priority`` = that order)."""
    return [
        row
        for priority, model in enumerate(catalogue.models)
        for row in model_rows(model, priority, catalogue.version)
    ]


def model_rows(model: ModelEntry, priority: int, catalogue: str) -> Iterator[RateRow]:
    rules = match_rules(model.match)
    regions = tuple(sorted((name, region.multiplier) for name, region in model.regions.items()))
    for mode in MODES:
        previous: RateRow | None = None
        for day in _period_starts(model, mode):
            row = _resolve(model, mode, day)
            row = replace(
                row, match_priority=priority, match_rules=rules, regions=regions, catalogue=catalogue
            )
            if previous is None or _rates_of(previous) != _rates_of(row):
                yield row
            previous = row


def match_rules(match: Match) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A match as "any of (all of leaf clauses)", the form SQL evaluates (``matches_catalogue``)."""
    if match.kind == "any":
        return tuple(conj for clause in match.clauses for conj in match_rules(clause))
    if match.kind == "all":
        conjunctions: list[tuple[tuple[str, str], ...]] = [()]
        for clause in match.clauses:
            conjunctions = [left + right for left in conjunctions for right in match_rules(clause)]
        return tuple(conjunctions)
    value = match.value if match.kind == "regex" else match.value.lower()
    return (((match.kind, value),),)


# -- resolution ---------------------------------------------------------------------------------------


def _period_starts(model: ModelEntry, mode: str) -> list[date]:
    entries: list[PriceEntry] = list(model.prices)
    if mode != "standard":
        entries += list(model.modes.get(mode, ()))
    if mode == "flex" and not model.modes.get("flex"):
        entries += list(model.modes.get("batch", ()))
    return sorted({entry.effective_from or EPOCH for entry in entries} | {EPOCH})


def _resolve(model: ModelEntry, mode: str, day: date) -> RateRow:
    standard = model.price_on(day)
    base = RateRow(
        provider=model.provider,
        model=model.id,
        mode=mode,
        valid_from=day,
        match_priority=0,
        match_rules=(),
        priced=True,
        web_search_per_1k=standard.fees_per_1k.get("web_search"),
        source=standard.source,
    )
    if mode == "standard":
        return _with_tiers(base, model.provider, [standard], ())
    chosen, rule = _mode_entry(model, mode, day)
    if chosen is None:
        if mode in ("batch", "flex") and model.provider in BATCH_HALF_PRICE_PROVIDERS:
            return _with_tiers(base, model.provider, [standard], (rule, "batch@50%-published"), factor=HALF)
        return replace(base, priced=False, tier_aboves=(), source="")
    return _with_tiers(
        replace(base, source=chosen.source), model.provider, [standard, chosen], (rule,) if rule else ()
    )


def _mode_entry(model: ModelEntry, mode: str, day: date) -> tuple[PriceEntry | None, str]:
    found = model.mode_on(mode, day)
    if found is not None:
        return found, ""
    if mode == "flex":
        return model.mode_on("batch", day), "flex@batch-rates"
    return None, ""


def _with_tiers(
    row: RateRow,
    provider: str,
    layers: list[PriceEntry],
    rules: Iterable[str],
    *,
    factor: Decimal = Decimal(1),
) -> RateRow:
    """Overlay ``layers`` (standard, then the mode) tier by tier, then fill the missing rates."""
    aboves = sorted({-1, *(tier.above for layer in layers for tier in layer.tiers)})
    names = [rule for rule in rules if rule]
    columns: dict[str, list[Decimal | None]] = {name: [] for name in TOKEN_RATES}
    for above in aboves:
        rates: dict[str, Decimal | None] = {name: None for name in TOKEN_RATES}
        for layer in layers:
            _overlay(rates, layer.rates)
            for tier in sorted(layer.tiers, key=lambda t: t.above):
                if tier.above <= above:
                    _overlay(rates, tier.rates)
        filled, notes = _fill_missing(rates, provider)
        names += [note for note in notes if note not in names]
        for name in TOKEN_RATES:
            value = filled[name]
            columns[name].append(None if value is None else value * factor)
    return replace(
        row,
        tier_aboves=tuple(aboves),
        input=tuple(columns["input"]),  # type: ignore[arg-type]  # never None: standard has input
        output=tuple(columns["output"]),
        cache_read=tuple(columns["cache_read"]),  # type: ignore[arg-type]
        cache_write_5m=tuple(columns["cache_write_5m"]),  # type: ignore[arg-type]
        cache_write_1h=tuple(columns["cache_write_1h"]),  # type: ignore[arg-type]
        rules=tuple(names),
    )


def _overlay(rates: dict[str, Decimal | None], layer: Rates) -> None:
    for name in TOKEN_RATES:
        value = getattr(layer, name)
        if value is not None:
            rates[name] = value


def _fill_missing(
    rates: dict[str, Decimal | None], provider: str
) -> tuple[dict[str, Decimal | None], list[str]]:
    notes: list[str] = []
    filled = dict(rates)
    price_in = filled["input"]
    assert price_in is not None, "the validator requires an input rate on every standard price"
    if filled["cache_read"] is None:
        filled["cache_read"] = price_in
    if filled["cache_write_5m"] is None:
        filled["cache_write_5m"] = price_in
    if filled["cache_write_1h"] is None:
        if provider == "anthropic":
            filled["cache_write_1h"] = price_in * ONE_HOUR_WRITE_FACTOR
            notes.append("1h-writes@2x-input")
        else:
            filled["cache_write_1h"] = filled["cache_write_5m"]
    return filled, notes


def _rates_of(row: RateRow) -> tuple[object, ...]:
    return (
        row.priced,
        row.tier_aboves,
        row.input,
        row.output,
        row.cache_read,
        row.cache_write_5m,
        row.cache_write_1h,
        row.web_search_per_1k,
        row.rules,
        row.source,
    )
