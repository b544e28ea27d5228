"""Refuse a price catalogue that is not format 1 (see the package docstring), naming every bad entry.

Pure Python on purpose: the meter, the cloud and the generator (which runs in its own environment)
all check a catalogue with this one function before trusting it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from halton_meter.catalogue.regex import FLAGS, NotPortable, portable_clause

FORMAT = 1
PROVIDERS = ("anthropic", "openai", "gemini", "xai")
RATE_KEYS = (
    "input",
    "output",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "input_audio",
    "output_audio",
    "cache_read_audio",
    "input_image",
    "output_image",
    "cache_read_image",
    "input_video",
    "output_video",
)
FEE_KEYS = ("web_search", "file_search", "text_message")
MODES = ("batch", "flex", "priority", "fast", "ultrafast")
MATCH_KINDS = ("equals", "starts_with", "ends_with", "contains", "regex")

_TOP_KEYS = frozenset({"format", "version", "generated_from", "models"})
_SOURCE_KEYS = frozenset({"name", "version", "role", "file"})
_MODEL_KEYS = frozenset({"provider", "id", "name", "source", "match", "prices", "modes", "regions"})
_ENTRY_KEYS = frozenset({"from", "source", "rates", "tiers", "fees_per_1k"})
_TIER_KEYS = frozenset({"above", "rates"})
_REGION_KEYS = frozenset({"multiplier", "source"})
# A plain non-negative decimal: no sign, exponent, NaN or thousands separator.
_DECIMAL = re.compile(r"\d+(\.\d+)?")
_MAX_REPORTED = 20


class CatalogueError(ValueError):
    """The catalogue is invalid; the message names each bad entry (``provider/id: where: what``)."""


def validate_catalogue(doc: Any) -> None:
    """Raise ``CatalogueError`` listing what is wrong with ``doc`` (a parsed rates.json); None if valid."""
    problems: list[str] = []
    _check_document(doc, problems)
    if problems:
        shown = problems[:_MAX_REPORTED]
        more = len(problems) - len(shown)
        tail = f"\n  … and {more} more" if more else ""
        raise CatalogueError(
            f"price catalogue refused ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  "
            + "\n  ".join(shown)
            + tail
        )


def _check_document(doc: Any, problems: list[str]) -> None:
    if not isinstance(doc, dict):
        problems.append("the catalogue must be a JSON object")
        return
    _unknown_keys(doc, _TOP_KEYS, "catalogue", problems)
    if doc.get("format") != FORMAT:
        problems.append(f"catalogue: format is {doc.get('format')!r}; this meter reads format {FORMAT}")
    if not _nonempty_str(doc.get("version")):
        problems.append("catalogue: version must be a non-empty string (date + content hash)")
    sources = doc.get("generated_from")
    if not isinstance(sources, list) or not sources:
        problems.append("catalogue: generated_from must list the sources with their versions")
    else:
        for i, src in enumerate(sources):
            where = f"generated_from[{i}]"
            if not isinstance(src, dict):
                problems.append(f"{where}: must be an object with name and version")
                continue
            _unknown_keys(src, _SOURCE_KEYS, where, problems)
            if not _nonempty_str(src.get("name")) or not _nonempty_str(src.get("version")):
                problems.append(f"{where}: name and version must be non-empty strings")
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        problems.append("catalogue: models must be a non-empty list")
        return
    seen: dict[tuple[str, str], int] = {}
    for i, model in enumerate(models):
        _check_model(i, model, seen, problems)


def _check_model(i: int, model: Any, seen: dict[tuple[str, str], int], problems: list[str]) -> None:
    if not isinstance(model, dict):
        problems.append(f"models[{i}]: must be an object")
        return
    provider, model_id = model.get("provider"), model.get("id")
    name = f"models[{i}] {provider}/{model_id}"
    _unknown_keys(model, _MODEL_KEYS, name, problems)
    if provider not in PROVIDERS:
        problems.append(f"{name}: unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    if not _nonempty_str(model_id):
        problems.append(f"{name}: id must be a non-empty string")
    elif isinstance(provider, str):
        key = (provider, model_id.lower())
        if key in seen:
            problems.append(f"{name}: duplicate model (also models[{seen[key]}])")
        else:
            seen[key] = i
    if not _nonempty_str(model.get("source")):
        problems.append(f"{name}: source must say who priced the model")
    if "name" in model and not isinstance(model["name"], str):
        problems.append(f"{name}: name must be a string")
    _check_match(model.get("match"), f"{name}: match", problems)
    prices = model.get("prices")
    if not isinstance(prices, list) or not prices:
        problems.append(f"{name}: prices must be a non-empty list of dated entries")
    else:
        _check_entries(prices, f"{name}: prices", problems, standard=True)
    modes = model.get("modes", {})
    if not isinstance(modes, dict):
        problems.append(f"{name}: modes must be an object")
    else:
        for mode, entries in modes.items():
            where = f"{name}: modes.{mode}"
            if mode not in MODES:
                problems.append(f"{where}: unknown mode (known: {', '.join(MODES)})")
            elif not isinstance(entries, list) or not entries:
                problems.append(f"{where}: must be a non-empty list of dated entries")
            else:
                _check_entries(entries, where, problems, standard=False)
    regions = model.get("regions", {})
    if not isinstance(regions, dict):
        problems.append(f"{name}: regions must be an object")
        return
    for region, spec in regions.items():
        where = f"{name}: regions.{region}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be an object with multiplier and source")
            continue
        _unknown_keys(spec, _REGION_KEYS, where, problems)
        _check_amount(spec.get("multiplier"), f"{where}.multiplier", problems, positive=True)
        if not _nonempty_str(spec.get("source")):
            problems.append(f"{where}: source must be a non-empty string")


def _check_entries(entries: list[Any], where: str, problems: list[str], *, standard: bool) -> None:
    previous: date | None = None
    for j, entry in enumerate(entries):
        here = f"{where}[{j}]"
        if not isinstance(entry, dict):
            problems.append(f"{here}: must be an object")
            continue
        _unknown_keys(entry, _ENTRY_KEYS, here, problems)
        started = _check_from(entry.get("from"), j, here, problems)
        if started is not None:
            if previous is not None and started <= previous:
                problems.append(
                    f"{here}: dates out of order: from {started.isoformat()} is not after "
                    f"{previous.isoformat()} of the entry before"
                )
            previous = started
        if not _nonempty_str(entry.get("source")):
            problems.append(f"{here}: source must say where the price comes from")
        rates = entry.get("rates", {})
        _check_rates(rates, f"{here}.rates", problems)
        # Output may be absent (embedding models produce none); input never is.
        if standard and isinstance(rates, dict) and "input" not in rates:
            problems.append(f"{here}.rates: missing input")
        tiers = entry.get("tiers", [])
        _check_tiers(tiers, f"{here}.tiers", problems)
        fees = entry.get("fees_per_1k", {})
        if not isinstance(fees, dict):
            problems.append(f"{here}.fees_per_1k: must be an object")
            continue
        for fee, amount in fees.items():
            if fee not in FEE_KEYS:
                problems.append(f"{here}.fees_per_1k: unknown fee {fee!r} (known: {', '.join(FEE_KEYS)})")
            _check_amount(amount, f"{here}.fees_per_1k.{fee}", problems)


def _check_from(value: Any, j: int, here: str, problems: list[str]) -> date | None:
    if value is None:
        if j > 0:
            problems.append(f"{here}: only the first entry may have no start date (from: null)")
        return None
    if not isinstance(value, str):
        problems.append(f"{here}: from must be an ISO date string or null, not {value!r}")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{here}: from {value!r} is not an ISO date (YYYY-MM-DD)")
        return None


def _check_rates(rates: Any, where: str, problems: list[str]) -> None:
    if not isinstance(rates, dict):
        problems.append(f"{where}: must be an object")
        return
    for key, amount in rates.items():
        if key not in RATE_KEYS:
            problems.append(f"{where}: unknown rate {key!r} (known: {', '.join(RATE_KEYS)})")
        _check_amount(amount, f"{where}.{key}", problems)


def _check_tiers(tiers: Any, where: str, problems: list[str]) -> None:
    if not isinstance(tiers, list):
        problems.append(f"{where}: must be a list")
        return
    previous = 0
    for k, tier in enumerate(tiers):
        here = f"{where}[{k}]"
        if not isinstance(tier, dict):
            problems.append(f"{here}: must be an object with above and rates")
            continue
        _unknown_keys(tier, _TIER_KEYS, here, problems)
        above = tier.get("above")
        if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
            problems.append(f"{here}.above: must be a positive whole number of tokens, not {above!r}")
        elif above <= previous:
            problems.append(
                f"{here}.above: tier threshold {above} is not above the previous one ({previous})"
            )
        else:
            previous = above
        rates = tier.get("rates")
        if not isinstance(rates, dict) or not rates:
            problems.append(f"{here}.rates: must list the rates that change above the threshold")
        else:
            _check_rates(rates, f"{here}.rates", problems)


def _check_match(clause: Any, where: str, problems: list[str]) -> None:
    if not isinstance(clause, dict) or len(clause) != 1:
        problems.append(f"{where}: must be one clause like {{'equals': 'model-id'}} or {{'any': [...]}}")
        return
    ((kind, value),) = clause.items()
    if kind in ("any", "all"):
        if not isinstance(value, list) or not value:
            problems.append(f"{where}.{kind}: must be a non-empty list of clauses")
            return
        for k, sub in enumerate(value):
            _check_match(sub, f"{where}.{kind}[{k}]", problems)
    elif kind not in MATCH_KINDS:
        problems.append(
            f"{where}: unknown clause {kind!r} (known: {', '.join((*MATCH_KINDS, 'any', 'all'))})"
        )
    elif not _nonempty_str(value):
        problems.append(f"{where}.{kind}: must be a non-empty string")
    elif kind == "regex":
        try:
            re.compile(value, FLAGS)
            portable_clause(kind, value)
        except re.error as exc:
            problems.append(f"{where}.regex: {value!r} does not compile ({exc})")
        except NotPortable as exc:
            problems.append(f"{where}.regex: {exc}")


def _check_amount(amount: Any, where: str, problems: list[str], *, positive: bool = False) -> None:
    if not isinstance(amount, str):
        problems.append(
            f'{where}: {amount!r} must be a decimal string like "2.50", not a JSON {type(amount).__name__}'
        )
    elif amount.startswith("-") and _DECIMAL.fullmatch(amount[1:]):
        problems.append(f"{where}: {amount!r} is negative")
    elif not _DECIMAL.fullmatch(amount):
        problems.append(f"{where}: {amount!r} is not a plain decimal amount")
    elif positive and not amount.strip("0."):
        problems.append(f"{where}: {amount!r} must be above zero")


def _unknown_keys(obj: dict[str, Any], known: frozenset[str], where: str, problems: list[str]) -> None:
    for key in obj:
        if key not in known:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
