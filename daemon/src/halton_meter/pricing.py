"""What one metered call cost, in USD, and which price card said so: the one cost model.

The meter prices every call here; the cloud's price-card asset, the recommendations and the demo price
with this module too, and the warehouse re-prices the same rate rows (``halton_meter.catalogue.rate_rows``)
with the same rules in SQL (``int_requests_priced``; a property test holds the two equal to the nano-dollar).

A call's price comes from, in order:

1. the provider's own bill for the call, when it states one (xAI ``cost_in_usd_ticks``);
2. a provider error without usage (HTTP 4xx/5xx, no tokens): the provider bills nothing, a known $0;
3. the user's overrides file (``~/.halton-meter/rates.json``) for negotiated or missing prices;
4. the price catalogue in force (``halton_meter.catalogue``: packaged with the meter, updated by
   ``halton-meter rates update`` or the cloud on sync), as rate rows.

The rules, in the order they apply:

- **Model.** The served model, then the requested one, resolved by the catalogue's match clauses.
- **Mode** (``call_mode``): a batch API call, or a call served at ``batch`` tier, is ``batch``; OpenAI,
  Gemini and xAI ``flex`` and ``priority`` tiers are their modes; Anthropic's Priority Tier is billed at
  standard rates (a capacity commitment), so it is ``standard``.
- **Day.** The price in force on the day (UTC) the call started.
- **Tier.** The whole request is priced at the highest size tier its prompt (cache reads and writes
  included) is strictly above.
- **Tokens.** ``input_tokens`` includes cache reads and writes (``halton_meter.protocol``); each token is
  charged once, in its bucket: uncached input, cache read, 5-minute write, 1-hour write, output (reasoning
  included).
- **Region.** A call the provider says it served in a region with a multiplier (Anthropic
  ``inference_geo: "us"``) has every token cost multiplied by it.
- **Fees.** Per-call fees on top: Anthropic web search, per 1,000 searches.
- **Incomplete responses** (a stream cut off or failed after its usage began) are priced on the counts
  seen, a lower bound of the bill, and the card says ``+incomplete-usage``; without both counts they are
  unpriced.
- Money is Decimal end to end and rounded once, to 9 decimal places (the row's precision), half up.
  A call that cannot be priced gets ``cost_usd=None`` and a reason, never $0.

Overrides file format (JSON; amounts in USD per million tokens, as numbers or decimal strings)::

    {
      "format": 1,
      "models": {
        "openai/gpt-4.1": {"input": "1.60", "output": "6.40", "cache_read": "0.40"},
        "anthropic/claude-sonnet-4-5": {
          "input": 3, "output": 15, "cache_read": "0.30",
          "cache_write_5m": "3.75", "cache_write_1h": 6,
          "long_context": {"threshold": 200000, "input": 6, "output": "22.50",
                           "cache_read": "0.60", "cache_write_5m": "7.50", "cache_write_1h": 12},
          "batch_discount": "0.5"
        },
        "openai/my-gateway-model*": {"input": 1, "output": 2,
                                      "priority": {"input": 2, "output": 4}}
      }
    }

Keys are ``provider/model`` (provider: anthropic, openai, gemini, xai); the model is matched without
regard to case against the model served, then the model requested; a trailing ``*`` matches by
prefix (the longest prefix wins). ``input`` and ``output`` are required; a missing ``cache_read`` or
``cache_write_5m`` is charged at ``input`` and a missing ``cache_write_1h`` at 2x ``input``.
``long_context`` rates replace the base rates for the whole request when the prompt exceeds
``threshold`` tokens. ``batch_discount`` (default 0.5) is the fraction taken off batch and flex calls.
``priority`` rates apply to calls served at priority tier. A ``"comment"`` key is allowed anywhere.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path
from types import MappingProxyType
from typing import Any

from halton_meter.catalogue import Catalogue, load_catalogue
from halton_meter.catalogue.entries import Match, ModelEntry, PriceEntry, Rates, Tier
from halton_meter.catalogue.rate_rows import RateRow, model_rows
from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)

MTOK = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000000001")
DEFAULT_BATCH_DISCOUNT = Decimal("0.5")
# Anthropic: "1-hour cache write tokens are 2 times the base input tokens price".
ONE_HOUR_WRITE_MULTIPLIER = Decimal(2)
_MAX_CARD = 256
_EXACT_DIGITS = 60
_MAX_RESOLVED_NAMES = 4096
# Tiers a call can ask for that have their own prices at these providers (see ``call_mode``).
_TIER_MODES = {"flex", "priority"}
_PROVIDERS = frozenset({"anthropic", "openai", "gemini", "xai"})

_RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MODEL_KEYS = frozenset({*_RATE_KEYS, "long_context", "priority", "batch_discount", "comment"})
_LONG_CONTEXT_KEYS = frozenset({*_RATE_KEYS, "threshold", "comment"})
_PRIORITY_KEYS = frozenset({*_RATE_KEYS, "comment"})


@dataclass(frozen=True)
class CardLine:
    """One bucket of a call's cost: ``tokens`` at ``rate`` USD per million (or ``count`` fees per 1,000)."""

    bucket: str
    quantity: int
    rate: Decimal


@dataclass(frozen=True)
class Price:
    """The cost of one call, or why there is none, and the card lines that made it."""

    cost_usd: Decimal | None
    price_card: str | None
    unpriced_reason: str | None
    lines: tuple[CardLine, ...] = ()


@dataclass(frozen=True)
class CallFacts:
    """Everything the cost depends on, taken from the request, the response and the row."""

    provider: str
    models: tuple[str, ...]  # served model first, then the requested one; empty when neither is known
    started_at: datetime
    mode: str = "standard"
    region: str | None = None
    status_code: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    web_search_requests: int = 0
    billed_cost_usd: Decimal | None = None


class RatesFileError(ValueError):
    """The overrides file is unreadable or invalid; the message names the bad key and the fix."""


def call_mode(provider: str, service_tier: str | None, batch: bool) -> str:
    """The catalogue mode a call is billed in (see the module docstring)."""
    tier = (service_tier or "").lower()
    if batch or tier == "batch":
        return "batch"
    if tier in _TIER_MODES and provider != "anthropic":
        return tier
    return "standard"


def facts_of(info: RequestInfo, usage: Usage, at: datetime, status_code: int | None = None) -> CallFacts:
    """The facts of one metered call (the meter's view: request info and parsed usage)."""
    return CallFacts(
        provider=info.provider,
        models=tuple(m for m in dict.fromkeys((usage.model_served, info.model_requested)) if m),
        started_at=at,
        mode=call_mode(info.provider, usage.service_tier or info.service_tier, info.batch),
        region=usage.region,
        status_code=status_code,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        web_search_requests=usage.extra_units.get("web_search_requests", 0),
        billed_cost_usd=usage.billed_cost_usd,
    )


class _RateIndex:
    """Rate rows of a list of models, found by (provider, model name) then (mode, day)."""

    def __init__(self, models: Sequence[ModelEntry], catalogue: str) -> None:
        self._models = models
        self._periods: dict[tuple[str, str, str], tuple[list[datetime], list[RateRow]]] = {}
        for priority, model in enumerate(models):
            for row in model_rows(model, priority, catalogue):
                starts, rows = self._periods.setdefault((model.provider, model.id, row.mode), ([], []))
                starts.append(
                    datetime(row.valid_from.year, row.valid_from.month, row.valid_from.day, tzinfo=UTC)
                )
                rows.append(row)
        self._resolved: dict[tuple[str, str], ModelEntry | None] = {}

    def model(self, provider: str, name: str) -> ModelEntry | None:
        key = (provider, name.lower())
        if key not in self._resolved:
            if len(self._resolved) >= _MAX_RESOLVED_NAMES:
                self._resolved.clear()
            self._resolved[key] = next(
                (m for m in self._models if m.provider == provider and m.match.matches(key[1])), None
            )
        return self._resolved[key]

    def row(self, model: ModelEntry, mode: str, at: datetime) -> RateRow | None:
        """The row of ``model`` in ``mode`` in force at ``at`` (the first one for a call before it)."""
        found = self._periods.get((model.provider, model.id, mode))
        if found is None:
            return None
        starts, rows = found
        return rows[max(bisect.bisect_right(starts, at) - 1, 0)]


class PriceBook:
    """Prices calls: the provider's bill, a provider error, the user's overrides, then the catalogue.

    ``overrides_path`` may point at a file that does not exist (no overrides). An invalid file raises
    :class:`RatesFileError` here, at start-up, rather than mispricing calls later. ``catalogue`` defaults
    to the packaged one.
    """

    def __init__(self, overrides_path: Path | None = None, *, catalogue: Catalogue | None = None) -> None:
        self._overrides_path = overrides_path
        self._overrides_digest: str | None = None
        overrides: list[ModelEntry] = []
        if overrides_path is not None and overrides_path.exists():
            raw = overrides_path.read_bytes()
            overrides = _parse_overrides(raw, str(overrides_path))
            self._overrides_digest = hashlib.sha256(raw).hexdigest()[:8]
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self._override_index = _RateIndex(overrides, f"overrides@{self._overrides_digest}")
        self._index = _RateIndex(self.catalogue.models, self.catalogue.version)

    @property
    def version(self) -> str:
        """The price data in use, e.g. ``catalogue 2026-12-06+15b13b20e47c+overrides@1a2b3c4d``."""
        version = f"catalogue {self.catalogue.version}"
        if self._overrides_digest:
            version += f"+overrides@{self._overrides_digest}"
        return version

    def price(
        self, info: RequestInfo, usage: Usage, at: datetime, *, status_code: int | None = None
    ) -> Price:
        """Price one call made at ``at``. Never raises: a failure is an unpriced call with a reason."""
        return self.price_facts(
            facts_of(info, usage, at, status_code), streamed=info.streamed, complete=usage.complete
        )

    def price_facts(self, facts: CallFacts, *, streamed: bool = False, complete: bool = True) -> Price:
        """Price one call from its facts. Never raises."""
        try:
            # Exact arithmetic: a call's token costs have up to ~30 significant digits before rounding.
            with localcontext(prec=_EXACT_DIGITS):
                return self._price(facts, streamed, complete)
        except Exception as exc:  # fail open: the call is recorded, unpriced
            logger.warning("could not price a %s call", facts.provider, exc_info=True)
            return Price(None, None, f"pricing failed ({type(exc).__name__}: {exc}); please report this")

    # -- the steps ------------------------------------------------------------------------------

    def _price(self, facts: CallFacts, streamed: bool, complete: bool) -> Price:
        shown = facts.models[0] if facts.models else "unknown-model"
        if facts.billed_cost_usd is not None:
            card = f"provider-billed:{facts.provider}/{shown} (usage.cost_in_usd_ticks)"
            return Price(_round(facts.billed_cost_usd), card[:_MAX_CARD], None)
        if facts.status_code is not None and facts.status_code >= 400 and _no_tokens(facts):
            card = f"provider-error:{facts.provider}/{shown} HTTP {facts.status_code}, not billed"
            return Price(_round(Decimal(0)), card[:_MAX_CARD], None)
        reason = _why_tokens_unknown(facts, streamed, complete)
        if reason:
            return Price(None, None, reason)
        cached = (
            (facts.cache_read_tokens or 0)
            + (facts.cache_write_tokens or 0)
            + (facts.cache_write_1h_tokens or 0)
        )
        if cached > (facts.input_tokens or 0):
            return Price(None, None, "cache tokens exceed input tokens; the usage is inconsistent")
        if not facts.models:
            return Price(None, None, "no model name in the request or the response")
        found = self._find(facts)
        if isinstance(found, Price):
            return found
        row, label = found
        price = _cost(row, label, facts)
        if not complete and price.price_card is not None:
            # The counts are the ones seen before the response ended: a lower bound of what was billed.
            price = replace(price, price_card=(price.price_card + "+incomplete-usage")[:_MAX_CARD])
        return price

    def _find(self, facts: CallFacts) -> tuple[RateRow, str] | Price:
        for index, label in (
            (self._override_index, f"overrides@{self._overrides_digest}"),
            (self._index, f"catalogue {self.catalogue.version}"),
        ):
            for name in facts.models:
                model = index.model(facts.provider, name)
                if model is None:
                    continue
                row = index.row(model, facts.mode, facts.started_at)
                if row is None or not row.priced:
                    day = facts.started_at.date().isoformat()
                    return Price(None, None, self._mode_unknown(facts.mode, model.key, day, label))
                return row, f"{label}:{model.key}"
        where = f" or add it to {self._overrides_path}" if self._overrides_path else ""
        shown = " / ".join(f"{facts.provider}/{m}" for m in facts.models)
        return Price(
            None,
            None,
            f"no price for {shown} in catalogue {self.catalogue.version}; run `halton-meter rates update`{where}",
        )

    def _mode_unknown(self, mode: str, key: str, day: str, label: str) -> str:
        where = str(self._overrides_path) if self._overrides_path else "rates.json"
        return (
            f"{mode} rates for {key} on {day} are not known to {label}; "
            f'run `halton-meter rates update` or add a "{mode}" block for it in {where}'
        )


# -- arithmetic -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buckets:
    """Tokens split as they are charged: each token once, in one bucket (input excludes the cache)."""

    uncached_input: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0


def card_lines(row: RateRow, tier: int, buckets: Buckets) -> tuple[CardLine, ...] | None:
    """The token lines of ``buckets`` at ``row``'s rates in ``tier``; None when output has no rate.

    Exact and unrounded; linear in every count, so a sum of calls in one tier costs the sum of their lines
    (what the recommendations price).
    """
    output_rate = row.output[tier]
    if buckets.output and output_rate is None:
        return None
    return (
        CardLine("input", buckets.uncached_input, row.input[tier]),
        CardLine("cache_read", buckets.cache_read, row.cache_read[tier]),
        CardLine("cache_write_5m", buckets.cache_write_5m, row.cache_write_5m[tier]),
        CardLine("cache_write_1h", buckets.cache_write_1h, row.cache_write_1h[tier]),
        CardLine("output", buckets.output, output_rate or Decimal(0)),
    )


def lines_usd(lines: Sequence[CardLine]) -> Decimal:
    """What token lines cost in USD, exactly (rates are per million tokens)."""
    with localcontext(prec=_EXACT_DIGITS):
        return sum((line.quantity * line.rate for line in lines), Decimal(0)) / MTOK


def _cost(row: RateRow, label: str, facts: CallFacts) -> Price:
    """The call's cost at ``row``: each token once, in its bucket; region; fees; one rounding."""
    tier = row.tier_index(facts.input_tokens or 0)
    cache_read = facts.cache_read_tokens or 0
    write_5m = facts.cache_write_tokens or 0
    write_1h = facts.cache_write_1h_tokens or 0
    buckets = Buckets(
        uncached_input=(facts.input_tokens or 0) - cache_read - write_5m - write_1h,
        cache_read=cache_read,
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        output=facts.output_tokens or 0,
    )
    found = card_lines(row, tier, buckets)
    if found is None:
        return Price(None, None, f"no output price for {label}")
    lines = list(found)
    tokens = lines_usd(lines)
    notes: list[str] = []
    if facts.mode != "standard":
        notes.append(f"+{facts.mode}")
    if tier > 0:
        notes.append(f"+long-context>{row.tier_aboves[tier]}")
    notes += [f"+{rule}" for rule in row.rules]
    multiplier = row.region_multiplier(facts.region)
    if multiplier is not None:
        tokens *= multiplier
        notes.append(f"+region:{facts.region}x{multiplier}")
    cost = tokens
    searches = facts.web_search_requests
    if searches and row.web_search_per_1k is not None:
        cost += searches * row.web_search_per_1k / 1000
        lines.append(CardLine("web_search", searches, row.web_search_per_1k))
        notes.append("+web-search")
    return Price(_round(cost), (label + "".join(notes))[:_MAX_CARD], None, tuple(lines))


def _round(value: Decimal) -> Decimal:
    return value.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _no_tokens(facts: CallFacts) -> bool:
    return facts.input_tokens is None and facts.output_tokens is None


def _why_tokens_unknown(facts: CallFacts, streamed: bool, complete: bool) -> str | None:
    if facts.input_tokens is not None and facts.output_tokens is not None:
        return None
    if facts.mode == "batch" and complete and _no_tokens(facts):
        return "batch API call: its usage and cost arrive with the batch results, not on this call"
    if streamed and facts.provider in ("openai", "xai") and complete and facts.input_tokens is None:
        return "token counts unknown: the stream carried no usage (set stream_options.include_usage)"
    if not complete:
        return "token counts unknown: the response ended before its usage was seen"
    return "token counts unknown: the response carried no usage"


# -- the overrides file ---------------------------------------------------------------------------


def _parse_overrides(raw: bytes, where: str) -> list[ModelEntry]:
    """The overrides file as catalogue models: exact keys first, then prefixes, longest first."""
    fix = "Fix it, or delete the file to use the built-in prices."
    try:
        document = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RatesFileError(f"{where} is not valid JSON ({exc}). {fix}") from exc
    if not isinstance(document, dict):
        raise RatesFileError(f'{where}: expected a JSON object with "format" and "models". {fix}')
    _no_unknown_keys(document, {"format", "models", "comment"}, where, "")
    if document.get("format") != 1:
        raise RatesFileError(f'{where}: "format" must be 1, got {document.get("format")!r}. {fix}')
    models = document.get("models")
    if not isinstance(models, dict):
        raise RatesFileError(f'{where}: "models" must be an object keyed by "provider/model". {fix}')
    source = f"overrides {where}"
    entries: list[ModelEntry] = []
    for key, entry in models.items():
        path = f"models.{json.dumps(key)}"
        provider, slash, model = key.lower().partition("/")
        if not slash or provider not in _PROVIDERS or not model or "*" in model[:-1]:
            raise RatesFileError(
                f'{where}: {path}: keys must look like "provider/model" (provider one of '
                f"{', '.join(sorted(_PROVIDERS))}; an optional trailing * matches by prefix). {fix}"
            )
        if not isinstance(entry, dict):
            raise RatesFileError(f"{where}: {path}: expected an object of rates. {fix}")
        _no_unknown_keys(entry, _MODEL_KEYS, where, path)
        base = _parse_rates(entry, where, path)
        tiers: tuple[Tier, ...] = ()
        long_context = entry.get("long_context")
        if long_context is not None:
            sub = f"{path}.long_context"
            if not isinstance(long_context, dict):
                raise RatesFileError(f"{where}: {sub}: expected an object with threshold and rates. {fix}")
            _no_unknown_keys(long_context, _LONG_CONTEXT_KEYS, where, sub)
            threshold = long_context.get("threshold")
            if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
                raise RatesFileError(
                    f"{where}: {sub}.threshold: expected a whole number of prompt tokens, got {threshold!r}. {fix}"
                )
            tiers = (Tier(above=threshold, rates=_parse_rates(long_context, where, sub)),)
        modes: dict[str, tuple[PriceEntry, ...]] = {}
        priority = entry.get("priority")
        if priority is not None:
            sub = f"{path}.priority"
            if not isinstance(priority, dict):
                raise RatesFileError(f"{where}: {sub}: expected an object of rates. {fix}")
            _no_unknown_keys(priority, _PRIORITY_KEYS, where, sub)
            modes["priority"] = (_dated(_parse_rates(priority, where, sub), (), source),)
        discount = DEFAULT_BATCH_DISCOUNT
        if "batch_discount" in entry:
            discount = _amount(entry["batch_discount"], where, f"{path}.batch_discount")
            if discount > 1:
                raise RatesFileError(
                    f"{where}: {path}.batch_discount: expected a fraction between 0 and 1 "
                    f"(0.5 = 50% off), got {entry['batch_discount']!r}. {fix}"
                )
        keep = 1 - discount
        modes["batch"] = (
            _dated(_scaled(base, keep), tuple(Tier(t.above, _scaled(t.rates, keep)) for t in tiers), source),
        )
        standard = replace(_dated(base, tiers, source), fees_per_1k=_override_fees(provider))
        match = Match("starts_with", model[:-1]) if model.endswith("*") else Match("equals", model)
        entries.append(
            ModelEntry(
                provider=provider,
                id=model,
                name=None,
                source=source,
                match=match,
                prices=(standard,),
                modes=MappingProxyType(modes),
                regions=MappingProxyType({}),
            )
        )
    # Exact names before prefixes, and a longer prefix before a shorter one (first match wins).
    return sorted(entries, key=lambda e: (e.match.kind == "starts_with", -len(e.match.value)))


def _dated(rates: Rates, tiers: tuple[Tier, ...], source: str) -> PriceEntry:
    return PriceEntry(
        effective_from=None, source=source, rates=rates, tiers=tiers, fees_per_1k=MappingProxyType({})
    )


def _override_fees(provider: str) -> MappingProxyType[str, Decimal]:
    # Anthropic web search is billed per search whatever the negotiated token rates ($10 per 1,000).
    return MappingProxyType({"web_search": Decimal(10)} if provider == "anthropic" else {})


def _scaled(rates: Rates, factor: Decimal) -> Rates:
    return Rates(
        **{key: getattr(rates, key) * factor for key in _RATE_KEYS if getattr(rates, key) is not None}
    )


def _parse_rates(entry: dict[str, Any], where: str, path: str) -> Rates:
    for required in ("input", "output"):
        if required not in entry:
            raise RatesFileError(
                f'{where}: {path}: "{required}" is required (USD per million tokens). '
                "Add it, or delete the file to use the built-in prices."
            )
    values = {key: _amount(entry[key], where, f"{path}.{key}") for key in _RATE_KEYS if key in entry}
    # The file's documented default: a 1-hour cache write costs 2x input, at every provider.
    values.setdefault("cache_write_1h", values["input"] * ONE_HOUR_WRITE_MULTIPLIER)
    return Rates(**values)


def _amount(value: Any, where: str, path: str) -> Decimal:
    problem = f"{where}: {path}: expected a non-negative number (USD per million tokens), got {value!r}."
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise RatesFileError(f"{problem} Fix the value.")
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise RatesFileError(f"{problem} Fix the value.") from exc
    if not amount.is_finite() or amount < 0:
        raise RatesFileError(f"{problem} Fix the value.")
    return amount


def _no_unknown_keys(
    entry: dict[str, Any], allowed: frozenset[str] | set[str], where: str, path: str
) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        at = f"{path}." if path else ""
        raise RatesFileError(
            f"{where}: unknown key {at}{unknown[0]} (allowed: {', '.join(sorted(allowed))}). "
            "Fix the spelling or remove it."
        )
