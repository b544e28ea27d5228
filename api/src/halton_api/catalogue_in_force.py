"""The price catalogue in force for the cloud: the newest one stored in `raw.price_catalogues` (the Dagster
`price_catalogue` asset keeps every version it accepted), else the one packaged with halton-meter.

`GET /v1/rates` publishes it to meters, and anything else in the API that prices or shows prices (the pricing
docs page, the overview's unpriced calls) asks `catalogue_for` (the dependency `deps.Prices`) so that they all
agree. A stored document is validated again before it
is trusted: one that fails (written by hand?) is logged and the packaged catalogue is used instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi import Request

from halton_api.cloud_settings import CloudSettings
from halton_meter.catalogue import Catalogue, CatalogueError, packaged_text, parse_catalogue
from halton_meter.catalogue.etag import catalogue_etag
from halton_warehouse.price_catalogues import newest_catalogue
from halton_warehouse.warehouse_settings import Databases

log = logging.getLogger(__name__)

PACKAGED_SOURCE = "packaged with halton-meter"


@dataclass(frozen=True)
class CatalogueInForce:
    """The catalogue in force with the exact bytes the cloud serves for it."""

    version: str
    document: bytes
    sha256: str
    source: str
    catalogue: Catalogue

    @property
    def etag(self) -> str:
        return catalogue_etag(self.version)


def catalogue_in_force(
    client: Client, databases: Databases, *, known: CatalogueInForce | None = None
) -> CatalogueInForce:
    """The newest stored catalogue if it is valid, else the packaged one (runs in a warehouse thread).

    `known`: one read before; returned as is when it is still the one in force (no parsing again)."""
    try:
        stored = newest_catalogue(client, databases)
    except DatabaseError as error:
        if "UNKNOWN_TABLE" not in str(error) and getattr(error, "code", None) != 60:
            raise
        stored = None  # migration 0008 not applied yet: nothing stored
    if stored is not None and known is not None and known.sha256 == stored.sha256:
        return known
    if stored is not None:
        try:
            catalogue = parse_catalogue(json.loads(stored.document))
        except (CatalogueError, ValueError) as error:
            log.error(
                "stored price catalogue %s is invalid, serving the packaged one: %s", stored.version, error
            )
        else:
            return CatalogueInForce(
                stored.version, stored.document.encode(), stored.sha256, stored.source, catalogue
            )
    if known is not None and known.source == PACKAGED_SOURCE:
        return known
    return packaged_catalogue()


async def catalogue_for(request: Request, settings: CloudSettings) -> CatalogueInForce:
    """The catalogue in force, from the app's cache (`app.state.rates`), read again every `rates_cache_seconds`."""
    cache: CatalogueCache = request.app.state.rates
    held = cache.fresh()
    if held is not None:
        return held
    reader = request.app.state.reader
    read = functools.partial(catalogue_in_force, databases=settings.warehouse.databases, known=cache.last)
    return cache.keep(await reader.pool.run_with_retries(read, retries=settings.warehouse_retries))


def packaged_catalogue() -> CatalogueInForce:
    document = packaged_text().encode()
    catalogue = parse_catalogue(json.loads(document))
    return CatalogueInForce(
        catalogue.version, document, hashlib.sha256(document).hexdigest(), PACKAGED_SOURCE, catalogue
    )


class CatalogueCache:
    """The app's copy of the catalogue in force, read again after `ttl` seconds (one per app, on its state)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: tuple[float, CatalogueInForce] | None = None

    def fresh(self) -> CatalogueInForce | None:
        if self._held is None or time.monotonic() - self._held[0] >= self.ttl:
            return None
        return self._held[1]

    @property
    def last(self) -> CatalogueInForce | None:
        """The value held, however old (to skip parsing a document that has not changed)."""
        return self._held[1] if self._held else None

    def keep(self, value: CatalogueInForce) -> CatalogueInForce:
        self._held = (time.monotonic(), value)
        return value
