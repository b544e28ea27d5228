"""`/docs/concepts/pricing`: public, generated from the catalogue in force, and it agrees with
`halton-meter rates show … --json`."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from halton_api.pdf.reports import METHODOLOGY_PATH
from halton_meter.catalogue import load_catalogue
from halton_meter.cli import main as meter_cli

# New in the catalogue of issue 17: one model per provider.
NEW_MODELS = ("anthropic/claude-sonnet-5", "openai/gpt-6-sol", "gemini/gemini-3.5-flash", "xai/grok-4.5")
_ROW = re.compile(r'<tr data-model="([^"]+)">(.*?)</tr>', re.DOTALL)
_AMOUNT = re.compile(r'data-(rate|fee)="([^"]+)">\$([0-9.]+)</span>')


def page_amounts(page: str) -> dict[str, dict[str, str]]:
    """{model key: {"rate|standard|input": "3", …}} as the page shows them."""
    return {
        html.unescape(key): {
            f"{kind}|{html.unescape(where)}": amount for kind, where, amount in _AMOUNT.findall(row)
        }
        for key, row in _ROW.findall(page)
    }


def cli_amounts(document: dict[str, Any]) -> dict[str, str]:
    """The same keys from the JSON `rates show` prints."""
    out: dict[str, str] = {}

    def price(where: str, entry: dict[str, Any], fees: bool) -> None:
        out.update({f"rate|{where}|{k}": v for k, v in entry["rates"].items()})
        for tier in entry["tiers"]:
            out.update({f"rate|{where}|above {tier['above']}|{k}": v for k, v in tier["rates"].items()})
        if fees:
            out.update({f"fee|{where}|{k}": v for k, v in entry["fees_per_1k"].items()})

    price("standard", document["standard"], fees=True)
    for mode, entry in document["modes"].items():
        if entry is not None:
            price(mode, entry, fees=False)
    for item in document["scheduled"]:
        price(f"scheduled {item['mode']} {item['from']}", item, fees=False)
    return out


def test_the_page_is_public_and_shows_the_catalogue(client: TestClient) -> None:
    response = client.get(METHODOLOGY_PATH)  # the PDF footer's link, no session
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = response.text
    catalogue = load_catalogue()
    assert f"<code data-catalogue-version>{catalogue.version}</code>" in text
    for rule in (
        "each token charged once",
        "re-prices the whole request",
        "charged its batch rates",
        "multiplies every token rate",
        "per 1,000 calls",
        "costs a known $0",
        "unpriced, never $0",
        "in force on its day (UTC)",
        "rounded once, to the nano-dollar",
    ):
        assert rule in text, rule
    shown = page_amounts(text)
    assert len(shown) == len(catalogue.models)
    # The page policy allows neither inline: scripts only from the product's own files (src=), no style=.
    assert not re.search(r"<script(?![^>]*\bsrc=)", text) and "style=" not in text


@pytest.mark.parametrize("model", NEW_MODELS)
def test_the_page_agrees_with_rates_show(client: TestClient, tmp_path, model: str) -> None:
    printed = CliRunner().invoke(
        meter_cli, ["rates", "show", model, "--json"], env={"HALTON_METER_HOME": str(tmp_path / "meter")}
    )
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.output)
    page = client.get(METHODOLOGY_PATH).text
    assert document["catalogue_version"] in page
    expected = cli_amounts(document)
    assert expected["rate|standard|input"] and expected["rate|standard|output"]
    assert page_amounts(page)[model] == expected
    row = dict(_ROW.findall(page))[model]
    assert (
        f'data-since="standard">{"date unknown" if document["standard"]["from"] is None else "from " + document["standard"]["from"]}'
        in row
    )
