"""The price catalogue for the cloud's pipelines: where a new one is read from, and the one in force.

In force: the newest catalogue stored in `raw.price_catalogues` (the `price_catalogue` asset stores every
version it accepted), else the one packaged with halton-meter; the API's `halton_api.catalogue_in_force` answers the
same question for `GET /v1/rates` from the same table. A stored document that fails validation is skipped
with a warning, so a bad row cannot break a run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client

from halton_meter.catalogue import Catalogue, CatalogueError, packaged_text, parse_catalogue
from halton_warehouse import Databases
from halton_warehouse.price_catalogues import newest_catalogue

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 60.0
PACKAGED = "packaged with halton-meter"


class SourceError(RuntimeError):
    """The configured source could not be read; the message names it and says why."""


@dataclass(frozen=True)
class FetchedCatalogue:
    text: str
    where: str

    def document(self) -> Any:
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as error:
            raise SourceError(f"{self.where} is not JSON: {error}") from error


def read_source(location: str) -> FetchedCatalogue:
    """The catalogue at `location`: an http(s) URL, a file path, or '' for the packaged one."""
    if not location:
        text = packaged_text()
        return FetchedCatalogue(text, PACKAGED)
    if location.startswith(("https://", "http://")):
        try:
            response = httpx.get(location, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        except httpx.HTTPError as error:
            raise SourceError(f"cannot fetch {location}: {error}") from error
        if response.status_code != 200:
            raise SourceError(
                f"cannot fetch {location}: HTTP {response.status_code} {response.reason_phrase}"
            )
        return FetchedCatalogue(response.text, location)
    path = Path(location).expanduser()
    try:
        return FetchedCatalogue(path.read_text(encoding="utf-8"), str(path))
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from error


def document_in_force(client: Client, databases: Databases) -> tuple[dict[str, Any], str, Catalogue]:
    """The catalogue in force as a document, where it comes from (`raw.price_catalogues` or packaged), and
    parsed."""
    stored = newest_catalogue(client, databases)
    if stored is not None:
        try:
            document = json.loads(stored.document)
            return document, f"{databases.raw}.price_catalogues ({stored.source})", parse_catalogue(document)
        except (CatalogueError, ValueError) as error:
            log.warning(
                "stored price catalogue %s is invalid, using the packaged one: %s", stored.version, error
            )
    document = json.loads(packaged_text())
    return document, PACKAGED, parse_catalogue(document)


def catalogue_in_force(client: Client, databases: Databases) -> Catalogue:
    """The catalogue the pipelines price with: the newest stored one, else the packaged one."""
    return document_in_force(client, databases)[2]
