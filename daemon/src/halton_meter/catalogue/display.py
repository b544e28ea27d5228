"""What a catalogue model costs on a given day, as people read it: ``halton-meter rates show`` and the
cloud's ``/docs/concepts/pricing`` page both render these views, so the terminal and the page cannot
disagree.

A view holds the entries in force on the day (standard, each mode, regions) with the date each took
effect and its source, plus the entries already published for a later day. ``to_json`` gives amounts as
decimal strings, never floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any

from halton_meter.catalogue.entries import Catalogue, ModelEntry, PriceEntry, Rates

RATE_LABELS = {
    "input": "input",
    "output": "output",
    "cache_read": "cache read",
    "cache_write_5m": "cache write 5m",
    "cache_write_1h": "cache write 1h",
    "input_audio": "audio input",
    "output_audio": "audio output",
    "cache_read_audio": "audio cache read",
    "input_image": "image input",
    "output_image": "image output",
    "cache_read_image": "image cache read",
    "input_video": "video input",
    "output_video": "video output",
}
FEE_LABELS = {"web_search": "web search", "file_search": "file search", "text_message": "text message"}
# The order modes are listed in: the cheaper ways first, then the faster ones.
MODE_ORDER = ("batch", "flex", "priority", "fast", "ultrafast")
UNKNOWN_DATE = "date unknown"


def decimal_text(value: Decimal) -> str:
    """``3``, ``0.0625``: the exact amount, never in exponent form."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def usd(value: Decimal) -> str:
    return f"${decimal_text(value)}"


def rate_pairs(rates: Rates) -> tuple[tuple[str, Decimal], ...]:
    """The rates an entry states, in the order of ``RATE_LABELS``."""
    stated = ((f.name, getattr(rates, f.name)) for f in fields(Rates))
    return tuple((key, value) for key, value in stated if value is not None)


@dataclass(frozen=True)
class PriceView:
    """One dated entry: the rates it states (USD per million tokens), its size tiers and per-call fees."""

    since: date | None
    source: str
    rates: tuple[tuple[str, Decimal], ...]
    tiers: tuple[tuple[int, tuple[tuple[str, Decimal], ...]], ...]
    fees_per_1k: tuple[tuple[str, Decimal], ...]

    @classmethod
    def of(cls, entry: PriceEntry, *, under: Rates | None = None) -> PriceView:
        """``entry`` as shown; ``under`` (the standard rates) fills the rates a mode entry leaves out."""
        rates = dict(rate_pairs(under)) if under is not None else {}
        rates.update(rate_pairs(entry.rates))
        ordered = tuple((key, rates[key]) for key in RATE_LABELS if key in rates)
        return cls(
            since=entry.effective_from,
            source=entry.source,
            rates=ordered,
            tiers=tuple((tier.above, rate_pairs(tier.rates)) for tier in entry.tiers),
            fees_per_1k=tuple(sorted(entry.fees_per_1k.items())),
        )

    @property
    def since_text(self) -> str:
        return f"from {self.since.isoformat()}" if self.since else UNKNOWN_DATE

    def rate(self, key: str) -> Decimal | None:
        return dict(self.rates).get(key)

    def lines(self) -> list[str]:
        """The entry in plain words, one line per rate group."""
        out = [_rates_text(self.rates)]
        for above, rates in self.tiers:
            out.append(f"above {above:,} prompt tokens: {_rates_text(rates)}")
        if self.fees_per_1k:
            out.append(
                "per-call fees: "
                + ", ".join(f"{FEE_LABELS.get(k, k)} {usd(v)} per 1,000" for k, v in self.fees_per_1k)
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.since.isoformat() if self.since else None,
            "source": self.source,
            "rates": {key: decimal_text(value) for key, value in self.rates},
            "tiers": [
                {"above": above, "rates": {key: decimal_text(value) for key, value in rates}}
                for above, rates in self.tiers
            ],
            "fees_per_1k": {key: decimal_text(value) for key, value in self.fees_per_1k},
        }


def _rates_text(rates: Iterable[tuple[str, Decimal]]) -> str:
    return ", ".join(f"{RATE_LABELS[key]} {usd(value)}" for key, value in rates) + " per million tokens"


@dataclass(frozen=True)
class ModeView:
    """A mode (batch, flex, …): the rates in force on the day (None: no published price that day)."""

    mode: str
    price: PriceView | None

    def to_json(self) -> dict[str, Any] | None:
        return None if self.price is None else self.price.to_json()


@dataclass(frozen=True)
class Scheduled:
    """An entry already published that takes effect after the day shown (``mode`` None: standard)."""

    mode: str | None
    price: PriceView

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode or "standard", **self.price.to_json()}


@dataclass(frozen=True)
class ModelView:
    provider: str
    id: str
    name: str | None
    source: str
    day: date
    standard: PriceView
    modes: tuple[ModeView, ...]
    regions: tuple[tuple[str, Decimal, str], ...]
    scheduled: tuple[Scheduled, ...]

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    def region_lines(self) -> list[str]:
        return [
            f"region {region}: every token rate multiplied by {decimal_text(multiplier)} ({source})"
            for region, multiplier, source in self.regions
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "on": self.day.isoformat(),
            "unit": "USD per million tokens; fees USD per 1,000 calls",
            "standard": self.standard.to_json(),
            "modes": {mode.mode: mode.to_json() for mode in self.modes},
            "regions": {
                region: {"multiplier": decimal_text(multiplier), "source": source}
                for region, multiplier, source in self.regions
            },
            "scheduled": [item.to_json() for item in self.scheduled],
        }


def _mode_order(mode: str) -> tuple[int, str]:
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), mode)


def model_view(entry: ModelEntry, day: date) -> ModelView:
    """Everything about ``entry`` in force on ``day`` (a UTC day, as calls are priced)."""
    standard = entry.price_on(day)
    modes = []
    scheduled = [
        Scheduled(None, PriceView.of(p)) for p in entry.prices if p.effective_from and p.effective_from > day
    ]
    for mode in sorted(entry.modes, key=_mode_order):
        found = entry.mode_on(mode, day)
        modes.append(ModeView(mode, None if found is None else PriceView.of(found, under=standard.rates)))
        # A mode's first entry is in force before its date too (the sources date it from when they
        # recorded it), so it is shown as in force, not as scheduled.
        scheduled.extend(
            Scheduled(mode, PriceView.of(p, under=entry.price_on(p.effective_from).rates))
            for p in entry.modes[mode]
            if p.effective_from and p.effective_from > day and p is not found
        )
    return ModelView(
        provider=entry.provider,
        id=entry.id,
        name=entry.name,
        source=entry.source,
        day=day,
        standard=PriceView.of(standard),
        modes=tuple(modes),
        regions=tuple(
            (region, spec.multiplier, spec.source) for region, spec in sorted(entry.regions.items())
        ),
        scheduled=tuple(sorted(scheduled, key=lambda s: (s.price.since or day, _mode_order(s.mode or "")))),
    )


def catalogue_views(catalogue: Catalogue, day: date) -> dict[str, list[ModelView]]:
    """Every model in force on ``day``, grouped by provider (providers and models in name order)."""
    grouped: dict[str, list[ModelView]] = {}
    for entry in sorted(catalogue.models, key=lambda e: (e.provider, e.id)):
        grouped.setdefault(entry.provider, []).append(model_view(entry, day))
    return grouped


def catalogue_json(catalogue: Catalogue, day: date, *, detail: bool = False) -> dict[str, Any]:
    """The catalogue's version, sources, model counts and each model's standard rates on ``day`` (every
    detail of every model with ``detail``)."""
    views = catalogue_views(catalogue, day)
    return {
        "version": catalogue.version,
        "format": catalogue.format,
        "generated_from": [
            {"name": s.name, "version": s.version, "role": s.role} for s in catalogue.generated_from
        ],
        "on": day.isoformat(),
        "models_per_provider": {provider: len(models) for provider, models in views.items()},
        "models": [
            view.to_json() if detail else summary_json(view) for models in views.values() for view in models
        ],
    }


def summary_json(view: ModelView) -> dict[str, Any]:
    """One model's standard input and output rates in force, with their date and source."""
    standard = view.standard
    return {
        "provider": view.provider,
        "id": view.id,
        "input": _maybe(standard.rate("input")),
        "output": _maybe(standard.rate("output")),
        "from": standard.since.isoformat() if standard.since else None,
        "source": standard.source,
    }


def _maybe(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)
