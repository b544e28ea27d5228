"""Read a rates.json (the one shipped in this package by default), validate it, build frozen entries."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from halton_meter.catalogue.entries import (
    Catalogue,
    Match,
    ModelEntry,
    PriceEntry,
    Rates,
    Region,
    Source,
    Tier,
)
from halton_meter.catalogue.validate import CatalogueError, validate_catalogue

PACKAGED_FILE = "rates.json"


def packaged_text() -> str:
    """The text of the rates.json shipped in this package (the catalogue a meter has before any update)."""
    return resources.files(__package__).joinpath(PACKAGED_FILE).read_text(encoding="utf-8")


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue at ``path``, or the one shipped with the meter; ``CatalogueError`` if it is invalid."""
    if path is None:
        text = packaged_text()
        where = f"the packaged {PACKAGED_FILE}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError(f"cannot read the price catalogue {path}: {exc.strerror}") from exc
        where = str(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{where} is not JSON: {exc}") from exc
    return parse_catalogue(doc)


def parse_catalogue(doc: Any) -> Catalogue:
    """Validate a parsed catalogue and return it typed."""
    validate_catalogue(doc)
    return Catalogue(
        format=doc["format"],
        version=doc["version"],
        generated_from=tuple(
            Source(name=src["name"], version=src["version"], role=src.get("role"))
            for src in doc["generated_from"]
        ),
        models=tuple(_model(model) for model in doc["models"]),
    )


def _model(model: dict[str, Any]) -> ModelEntry:
    return ModelEntry(
        provider=model["provider"],
        id=model["id"],
        name=model.get("name"),
        source=model["source"],
        match=parse_match(model["match"]),
        prices=tuple(_entry(entry) for entry in model["prices"]),
        modes=MappingProxyType(
            {
                mode: tuple(_entry(entry) for entry in entries)
                for mode, entries in model.get("modes", {}).items()
            }
        ),
        regions=MappingProxyType(
            {
                region: Region(multiplier=Decimal(spec["multiplier"]), source=spec["source"])
                for region, spec in model.get("regions", {}).items()
            }
        ),
    )


def _entry(entry: dict[str, Any]) -> PriceEntry:
    started = entry.get("from")
    return PriceEntry(
        effective_from=None if started is None else date.fromisoformat(started),
        source=entry["source"],
        rates=_rates(entry.get("rates", {})),
        tiers=tuple(
            Tier(above=tier["above"], rates=_rates(tier["rates"])) for tier in entry.get("tiers", [])
        ),
        fees_per_1k=MappingProxyType(
            {fee: Decimal(amount) for fee, amount in entry.get("fees_per_1k", {}).items()}
        ),
    )


def _rates(rates: dict[str, str]) -> Rates:
    return Rates(**{key: Decimal(amount) for key, amount in rates.items()})


def parse_match(clause: dict[str, Any]) -> Match:
    """A validated ``match`` clause of the file as a ``Match``."""
    ((kind, value),) = clause.items()
    if kind in ("any", "all"):
        return Match(kind=kind, clauses=tuple(parse_match(sub) for sub in value))
    return Match(kind=kind, value=value)
