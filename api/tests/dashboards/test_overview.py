"""The overview's unpriced line per model: the words `halton-meter report` uses, judged by the cloud's catalogue."""

from __future__ import annotations

from halton_api.dashboards.overview import unpriced_model
from halton_meter.catalogue import load_catalogue


def test_a_model_the_catalogue_lacks_is_named_with_the_catalogue_version() -> None:
    catalogue = load_catalogue()
    line = unpriced_model("anthropic", "claude-opus-9", 3, catalogue)
    assert not line.in_catalogue and line.catalogue_version == catalogue.version
    assert line.message == f"3 calls of claude-opus-9 unpriced (no price in catalogue {catalogue.version})"


def test_a_model_the_catalogue_knows_waits_for_the_next_build() -> None:
    catalogue = load_catalogue()
    line = unpriced_model("anthropic", "claude-sonnet-5-20260101", 1, catalogue)
    assert line.in_catalogue
    assert line.message.startswith("1 call of claude-sonnet-5-20260101 unpriced (catalogue ")
    assert "next build" in line.message
