"""The price catalogue as typed, frozen values (built by ``load.py`` from a validated rates.json)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from halton_meter.catalogue.regex import FLAGS


@dataclass(frozen=True)
class Rates:
    """USD per million tokens; None = the entry does not state this rate."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None
    cache_read_audio: Decimal | None = None
    input_image: Decimal | None = None
    output_image: Decimal | None = None
    cache_read_image: Decimal | None = None
    input_video: Decimal | None = None
    output_video: Decimal | None = None


@dataclass(frozen=True)
class Tier:
    """Rates that replace the ones below for the whole request once its prompt exceeds ``above`` tokens."""

    above: int
    rates: Rates


@dataclass(frozen=True)
class PriceEntry:
    """One dated price: in force from ``effective_from`` (None: start date unknown) until the next entry."""

    effective_from: date | None
    source: str
    rates: Rates
    tiers: tuple[Tier, ...]
    fees_per_1k: Mapping[str, Decimal]


@dataclass(frozen=True)
class Region:
    """A multiplier on every token rate for a call served in one region."""

    multiplier: Decimal
    source: str


@dataclass(frozen=True)
class Match:
    """Which model names resolve to an entry: a leaf (equals, starts_with, …) or any/all of clauses."""

    kind: str
    value: str = ""
    clauses: tuple[Match, ...] = ()

    def matches(self, name: str) -> bool:
        """Whether the lower-cased ``name`` is this model (same rules as genai-prices' clauses)."""
        if self.kind == "any":
            return any(clause.matches(name) for clause in self.clauses)
        if self.kind == "all":
            return all(clause.matches(name) for clause in self.clauses)
        if self.kind == "regex":
            return re.search(self.value, name, FLAGS) is not None
        value = self.value.lower()
        if self.kind == "equals":
            return name == value
        if self.kind == "starts_with":
            return name.startswith(value)
        if self.kind == "ends_with":
            return name.endswith(value)
        return value in name  # contains


def _in_force(entries: tuple[PriceEntry, ...], day: date) -> PriceEntry | None:
    chosen = None
    for entry in entries:
        if entry.effective_from is None or entry.effective_from <= day:
            chosen = entry
    return chosen


@dataclass(frozen=True)
class ModelEntry:
    """One model of one provider with its dated prices, modes (batch, flex, priority, …) and regions."""

    provider: str
    id: str
    name: str | None
    source: str
    match: Match
    prices: tuple[PriceEntry, ...]
    modes: Mapping[str, tuple[PriceEntry, ...]]
    regions: Mapping[str, Region]

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    def price_on(self, day: date) -> PriceEntry:
        """The standard price in force on ``day`` (the first entry for a day before every dated one)."""
        return _in_force(self.prices, day) or self.prices[0]

    def mode_on(self, mode: str, day: date) -> PriceEntry | None:
        """The rates a call served in ``mode`` replaces on ``day`` (its first entry for a day before every
        dated one), or None when the model has no price in that mode."""
        entries = self.modes.get(mode, ())
        return _in_force(entries, day) or (entries[0] if entries else None)


@dataclass(frozen=True)
class Source:
    name: str
    version: str
    role: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """A whole validated catalogue; ``find`` resolves a provider's model name (alias or dated id)."""

    format: int
    version: str
    generated_from: tuple[Source, ...]
    models: tuple[ModelEntry, ...]

    def find(self, provider: str, model: str) -> ModelEntry | None:
        """The first model of ``provider`` in file order whose match accepts ``model`` (case-insensitive)."""
        name = model.lower()
        for entry in self.models:
            if entry.provider == provider and entry.match.matches(name):
                return entry
        return None

    def providers(self) -> dict[str, int]:
        """Model count per provider."""
        counts: dict[str, int] = {}
        for entry in self.models:
            counts[entry.provider] = counts.get(entry.provider, 0) + 1
        return counts
