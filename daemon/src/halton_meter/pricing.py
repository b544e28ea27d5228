"""What one metered call cost, in USD, and which price card said so.

Prices come from, in order:

1. the provider's own bill for the call, when it states one (xAI ``cost_in_usd_ticks``);
2. the user's overrides file (``~/.halton-meter/rates.json``) for negotiated or missing prices;
3. the maintained ``genai-prices`` data (per-model rates, size tiers, dated price changes), plus the
   published rules it cannot express, each named on the card when it applies:
   - Anthropic 1-hour cache writes cost 2x the base input rate (genai-prices has one cache-write
     rate, the 5-minute one): ``+1h-writes@2x-input``;
   - Claude Sonnet 4 above 200k prompt tokens (1M-context beta) costs 2x input and 1.5x output for the
     whole request, a tier genai-prices 0.0.61 lacks for that model: ``+long-context>200k``;
   - batch API calls cost 50% less: ``+batch-50%``; OpenAI ``flex`` is priced at batch rates:
     ``+flex@batch-rates``; OpenAI ``priority`` has its own published rates: ``+priority``;
   - Anthropic web search costs $10 per 1,000 searches: ``+web-search@$10/1k``.

Token convention (``halton_meter.protocol``): ``input_tokens`` includes cache reads and writes, and
that is genai-prices' convention too, so usage goes in unchanged. A size tier ("long context")
applies to the WHOLE request once its prompt (cached tokens included) is above the threshold.

Money is Decimal end to end and rounded once, to 9 decimal places (the row's precision), half up.
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

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)

GENAI_PRICES_VERSION: str = genai_prices.__version__
# Our provider names -> genai-prices provider ids.
GENAI_PROVIDER_IDS = {"anthropic": "anthropic", "openai": "openai", "gemini": "google", "xai": "x-ai"}

MTOK = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000000001")
DEFAULT_BATCH_DISCOUNT = Decimal("0.5")
# Anthropic: "1-hour cache write tokens are 2 times the base input tokens price".
ONE_HOUR_WRITE_MULTIPLIER = Decimal(2)
# Anthropic web search: $10 per 1,000 searches, on top of tokens.
ANTHROPIC_WEB_SEARCH_USD = Decimal("0.01")
_MAX_CARD = 256

# Long-context premiums genai-prices 0.0.61 does not carry, keyed by (genai provider, genai model id):
# (threshold in prompt tokens, multiplier for every input-side rate, multiplier for output).
# Anthropic publishes $6 / $22.50 per MTok above 200k for Sonnet 4 (vs $3 / $15). Used only when the
# genai-prices card has no tiers of its own for the model, so newer data wins.
_LONG_CONTEXT_GAPS: dict[tuple[str, str], tuple[int, Decimal, Decimal]] = {
    ("anthropic", "claude-sonnet-4-0"): (200_000, Decimal(2), Decimal("1.5")),
}

# OpenAI priority processing, USD per MTok (input, cached input, output), from
# https://openai.com/api-priority-processing/ ; keyed by served model name first, then genai model id.
_OPENAI_PRIORITY: dict[str, tuple[str, str | None, str]] = {
    "gpt-5.4": ("5.00", "0.50", "30.00"),
    "gpt-5.4-mini": ("1.50", "0.15", "9.00"),
    "gpt-5.2": ("3.50", "0.35", "28.00"),
    "gpt-5.1": ("2.50", "0.25", "20.00"),
    "gpt-5": ("2.50", "0.25", "20.00"),
    "gpt-5-mini": ("0.45", "0.045", "3.60"),
    "gpt-4.1": ("3.50", "0.875", "14.00"),
    "gpt-4.1-mini": ("0.70", "0.175", "2.80"),
    "gpt-4.1-nano": ("0.20", "0.05", "0.80"),
    "gpt-4o": ("4.25", "2.125", "17.00"),
    "gpt-4o-2024-05-13": ("8.75", None, "26.25"),
    "gpt-4o-mini": ("0.25", "0.125", "1.00"),
    "o3": ("3.50", "0.875", "14.00"),
    "o4-mini": ("2.00", "0.50", "8.00"),
}

_RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MODEL_KEYS = frozenset({*_RATE_KEYS, "long_context", "priority", "batch_discount", "comment"})
_LONG_CONTEXT_KEYS = frozenset({*_RATE_KEYS, "threshold", "comment"})
_PRIORITY_KEYS = frozenset({*_RATE_KEYS, "comment"})
_PROVIDERS = frozenset(GENAI_PROVIDER_IDS)


@dataclass(frozen=True)
class Price:
    """The cost of one call, or why there is none."""

    cost_usd: Decimal | None
    price_card: str | None
    unpriced_reason: str | None


class RatesFileError(ValueError):
    """The overrides file is unreadable or invalid; the message names the bad key and the fix."""


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for one request, its size tier already chosen. None = not priced separately."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    per_request: Decimal = Decimal(0)


@dataclass(frozen=True)
class OverrideCard:
    """One model's rates from the overrides file."""

    key: str
    base: Rates
    long_context_threshold: int | None = None
    long_context: Rates | None = None
    priority: Rates | None = None
    batch_discount: Decimal = DEFAULT_BATCH_DISCOUNT


class PriceBook:
    """Prices calls from the provider's bill, the user's overrides, then genai-prices.

    ``overrides_path`` may point at a file that does not exist (no overrides). An invalid file raises
    :class:`RatesFileError` here, at start-up, rather than mispricing calls later.
    """

    def __init__(self, overrides_path: Path | None = None) -> None:
        self._overrides_path = overrides_path
        self._overrides: dict[str, OverrideCard] = {}
        self._overrides_digest: str | None = None
        if overrides_path is not None and overrides_path.exists():
            raw = overrides_path.read_bytes()
            self._overrides = _parse_overrides(raw, str(overrides_path))
            self._overrides_digest = hashlib.sha256(raw).hexdigest()[:8]
        self._snapshot = data_snapshot.get_snapshot()

    @property
    def version(self) -> str:
        """The price data in use, e.g. ``genai-prices 0.0.61+overrides@1a2b3c4d``."""
        version = f"genai-prices {GENAI_PRICES_VERSION}"
        if self._overrides_digest:
            version += f"+overrides@{self._overrides_digest}"
        return version

    def price(self, info: RequestInfo, usage: Usage, at: datetime) -> Price:
        """Price one call made at ``at``. Never raises: a failure is an unpriced call with a reason."""
        try:
            return self._price(info, usage, at)
        except Exception as exc:  # fail open: the call is recorded, unpriced
            logger.warning("could not price a %s call", info.provider, exc_info=True)
            return Price(None, None, f"pricing failed ({type(exc).__name__}: {exc}); please report this")

    # -- the steps ------------------------------------------------------------------------------

    def _price(self, info: RequestInfo, usage: Usage, at: datetime) -> Price:
        models = [m for m in dict.fromkeys((usage.model_served, info.model_requested)) if m]
        if usage.billed_cost_usd is not None:
            model = models[0] if models else "unknown-model"
            card = f"provider-billed:{info.provider}/{model} (usage.cost_in_usd_ticks)"
            return Price(_round(usage.billed_cost_usd), card[:_MAX_CARD], None)
        reason = _why_tokens_unknown(info, usage)
        if reason:
            return Price(None, None, reason)
        cached = (
            (usage.cache_read_tokens or 0)
            + (usage.cache_write_tokens or 0)
            + (usage.cache_write_1h_tokens or 0)
        )
        if cached > (usage.input_tokens or 0):
            return Price(None, None, "cache tokens exceed input tokens; the usage is inconsistent")
        if not models:
            return Price(None, None, "no model name in the request or the response")

        tier = (usage.service_tier or info.service_tier or "").lower()
        priority = tier == "priority"
        override = self._find_override(info.provider, models)
        if override is not None:
            rates, label, notes, discount = self._override_rates(override, usage, priority)
        else:
            found = self._genai_rates(info.provider, models, usage, at, priority)
            if isinstance(found, Price):
                return found
            rates, label, notes = found
            discount = DEFAULT_BATCH_DISCOUNT
        if rates is None:
            return Price(None, None, notes[0])

        cost, cost_notes, problem = _token_cost(rates, usage)
        if problem:
            return Price(None, None, f"{problem} for {label}")
        notes += cost_notes
        if info.batch or tier == "batch":
            cost *= 1 - discount
            notes.append(f"+batch-{_percent(discount)}%")
        elif tier == "flex":
            cost *= 1 - discount
            notes.append("+flex@batch-rates")
        searches = usage.extra_units.get("web_search_requests", 0)
        if info.provider == "anthropic" and searches:
            cost += searches * ANTHROPIC_WEB_SEARCH_USD
            notes.append("+web-search@$10/1k")
        return Price(_round(cost), (label + "".join(notes))[:_MAX_CARD], None)

    def _find_override(self, provider: str, models: list[str]) -> OverrideCard | None:
        if not self._overrides:
            return None
        for model in models:
            key = f"{provider}/{model}".lower()
            if key in self._overrides:
                return self._overrides[key]
        for model in models:
            key = f"{provider}/{model}".lower()
            prefixes = [k for k in self._overrides if k.endswith("*") and key.startswith(k[:-1])]
            if prefixes:
                return self._overrides[max(prefixes, key=len)]
        return None

    def _override_rates(
        self, card: OverrideCard, usage: Usage, priority: bool
    ) -> tuple[Rates | None, str, list[str], Decimal]:
        label = f"overrides@{self._overrides_digest}:{card.key}"
        notes: list[str] = []
        rates = card.base
        threshold = card.long_context_threshold
        if card.long_context is not None and threshold is not None and (usage.input_tokens or 0) > threshold:
            rates = card.long_context
            notes.append(f"+long-context>{threshold}")
        if priority:
            if card.priority is not None:
                rates = card.priority
                notes.append("+priority")
            elif card.key.startswith("openai/"):
                return None, label, [self._priority_unknown(card.key)], card.batch_discount
            else:
                notes.append("+priority@standard-rates")
        return rates, label, notes, card.batch_discount

    def _genai_rates(
        self, provider: str, models: list[str], usage: Usage, at: datetime, priority: bool
    ) -> tuple[Rates | None, str, list[str]] | Price:
        provider_id = GENAI_PROVIDER_IDS.get(provider)
        if provider_id is None:
            return Price(None, None, f"no price data for provider {provider!r}")
        for model in models:
            try:
                gp_provider, gp_model = self._snapshot.find_provider_model(model, None, provider_id, None)
            except LookupError:
                continue
            label = f"genai-prices@{GENAI_PRICES_VERSION}:{gp_provider.id}/{gp_model.id}"
            model_price = gp_model.get_prices(at)
            total_input = usage.input_tokens or 0
            rates, notes = _rates_from_genai(model_price, total_input)
            gap = _LONG_CONTEXT_GAPS.get((gp_provider.id, gp_model.id))
            if gap and not isinstance(model_price.input_mtok, TieredPrices) and total_input > gap[0]:
                rates = _scaled(rates, gap[1], gap[2])
                notes.append(f"+long-context>{gap[0]}")
            if priority:
                table = _OPENAI_PRIORITY.get(model.lower()) or _OPENAI_PRIORITY.get(gp_model.id)
                if provider == "openai" and table is None:
                    return None, label, [self._priority_unknown(f"openai/{model}")]
                if table is not None:
                    rates = _priority_rates(rates, table)
                    notes = [n for n in notes if not n.startswith("+long-context")] + ["+priority"]
                else:
                    notes.append("+priority@standard-rates")
            return rates, label, notes
        where = f" or add it to {self._overrides_path}" if self._overrides_path else ""
        shown = " / ".join(f"{provider}/{m}" for m in models)
        return Price(
            None,
            None,
            f"no price for {shown} in genai-prices {GENAI_PRICES_VERSION}; upgrade genai-prices{where}",
        )

    def _priority_unknown(self, key: str) -> str:
        where = str(self._overrides_path) if self._overrides_path else "rates.json"
        return f'priority-tier rates for {key} are not known; add a "priority" block for it in {where}'


# -- arithmetic -----------------------------------------------------------------------------------


def _token_cost(rates: Rates, usage: Usage) -> tuple[Decimal, list[str], str | None]:
    """(cost before discounts, card notes, problem). Each token is charged once, in its bucket."""
    if rates.input is None:
        return Decimal(0), [], "no input price"
    input_tokens = usage.input_tokens or 0
    output_tokens = usage.output_tokens or 0
    cache_read = usage.cache_read_tokens or 0
    write_5m = usage.cache_write_tokens or 0
    write_1h = usage.cache_write_1h_tokens or 0
    uncached = input_tokens - cache_read - write_5m - write_1h
    if output_tokens and rates.output is None:
        return Decimal(0), [], "no output price"
    notes: list[str] = []
    one_hour_rate = rates.cache_write_1h
    if write_1h and one_hour_rate is None:
        one_hour_rate = rates.input * ONE_HOUR_WRITE_MULTIPLIER
        notes.append("+1h-writes@2x-input")
    total = (
        uncached * rates.input
        + cache_read * _or(rates.cache_read, rates.input)
        + write_5m * _or(rates.cache_write_5m, rates.input)
        + write_1h * (one_hour_rate if one_hour_rate is not None else rates.input)
        + output_tokens * (rates.output or Decimal(0))
    ) / MTOK
    return total + rates.per_request, notes, None


def _rates_from_genai(price: ModelPrice, total_input: int) -> tuple[Rates, list[str]]:
    notes: list[str] = []

    def at_tier(field: Decimal | TieredPrices | None) -> Decimal | None:
        if field is None or isinstance(field, Decimal):
            return field
        # genai-prices' cliff rule: above a tier's start, that tier's rate applies to every token.
        for tier in sorted(field.tiers, key=lambda t: t.start, reverse=True):
            if total_input > tier.start:
                note = f"+long-context>{tier.start}"
                if note not in notes:
                    notes.append(note)
                return tier.price
        return field.base

    rates = Rates(
        input=at_tier(price.input_mtok),
        output=at_tier(price.output_mtok),
        cache_read=at_tier(price.cache_read_mtok),
        cache_write_5m=at_tier(price.cache_write_mtok),
        cache_write_1h=None,
        per_request=(price.requests_kcount / 1000) if price.requests_kcount is not None else Decimal(0),
    )
    return rates, notes


def _scaled(rates: Rates, input_factor: Decimal, output_factor: Decimal) -> Rates:
    def times(value: Decimal | None, factor: Decimal) -> Decimal | None:
        return None if value is None else value * factor

    return replace(
        rates,
        input=times(rates.input, input_factor),
        output=times(rates.output, output_factor),
        cache_read=times(rates.cache_read, input_factor),
        cache_write_5m=times(rates.cache_write_5m, input_factor),
        cache_write_1h=times(rates.cache_write_1h, input_factor),
    )


def _priority_rates(standard: Rates, table: tuple[str, str | None, str]) -> Rates:
    input_rate, cached_rate, output_rate = table
    return replace(
        standard,
        input=Decimal(input_rate),
        cache_read=Decimal(cached_rate) if cached_rate is not None else None,
        output=Decimal(output_rate),
    )


def _or(value: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if value is None else value


def _round(value: Decimal) -> Decimal:
    return value.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _percent(fraction: Decimal) -> str:
    return format((fraction * 100).normalize(), "f")


def _why_tokens_unknown(info: RequestInfo, usage: Usage) -> str | None:
    if usage.input_tokens is not None and usage.output_tokens is not None:
        return None
    if info.batch:
        return "batch API call: its usage and cost arrive with the batch results, not on this call"
    if info.streamed and info.provider in ("openai", "xai") and usage.complete and usage.input_tokens is None:
        return "token counts unknown: the stream carried no usage (set stream_options.include_usage)"
    if not usage.complete:
        return "token counts unknown: the response ended before its usage was seen"
    return "token counts unknown: the response carried no usage"


# -- the overrides file ---------------------------------------------------------------------------


def _parse_overrides(raw: bytes, where: str) -> dict[str, OverrideCard]:
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
    cards: dict[str, OverrideCard] = {}
    for key, entry in models.items():
        path = f"models.{json.dumps(key)}"
        provider, slash, model = key.partition("/")
        if not slash or provider not in _PROVIDERS or not model or "*" in model[:-1]:
            raise RatesFileError(
                f'{where}: {path}: keys must look like "provider/model" (provider one of '
                f"{', '.join(sorted(_PROVIDERS))}; an optional trailing * matches by prefix). {fix}"
            )
        if not isinstance(entry, dict):
            raise RatesFileError(f"{where}: {path}: expected an object of rates. {fix}")
        _no_unknown_keys(entry, _MODEL_KEYS, where, path)
        card = OverrideCard(key=key.lower(), base=_parse_rates(entry, where, path))
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
            card = replace(
                card, long_context_threshold=threshold, long_context=_parse_rates(long_context, where, sub)
            )
        priority = entry.get("priority")
        if priority is not None:
            sub = f"{path}.priority"
            if not isinstance(priority, dict):
                raise RatesFileError(f"{where}: {sub}: expected an object of rates. {fix}")
            _no_unknown_keys(priority, _PRIORITY_KEYS, where, sub)
            card = replace(card, priority=_parse_rates(priority, where, sub))
        if "batch_discount" in entry:
            discount = _amount(entry["batch_discount"], where, f"{path}.batch_discount")
            if discount > 1:
                raise RatesFileError(
                    f"{where}: {path}.batch_discount: expected a fraction between 0 and 1 "
                    f"(0.5 = 50% off), got {entry['batch_discount']!r}. {fix}"
                )
            card = replace(card, batch_discount=discount)
        cards[card.key] = card
    return cards


def _parse_rates(entry: dict[str, Any], where: str, path: str) -> Rates:
    for required in ("input", "output"):
        if required not in entry:
            raise RatesFileError(
                f'{where}: {path}: "{required}" is required (USD per million tokens). '
                "Add it, or delete the file to use the built-in prices."
            )
    values = {key: _amount(entry[key], where, f"{path}.{key}") for key in _RATE_KEYS if key in entry}
    return Rates(
        input=values["input"],
        output=values["output"],
        cache_read=values.get("cache_read"),
        cache_write_5m=values.get("cache_write_5m"),
        cache_write_1h=values.get("cache_write_1h"),
    )


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
