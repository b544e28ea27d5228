"""`raw.price_catalogues`: every published price catalogue, the newest in force (migration 0008).

The API (`GET /v1/rates`) and the pipelines (the `price_catalogue` asset, the rate rows) both ask for the
catalogue in force; the document is kept as text here and parsed by each side with `halton_meter.catalogue`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client

from halton_warehouse.warehouse_settings import Databases


@dataclass(frozen=True)
class StoredCatalogue:
    version: str
    document: str
    sha256: str
    source: str
    fetched_at: datetime
    changes: str


def newest_catalogue(client: Client, databases: Databases) -> StoredCatalogue | None:
    """The newest stored catalogue (by fetched_at), or None when none was ever stored."""
    result = client.query(
        f"SELECT version, document, sha256, source, fetched_at, changes FROM {databases.raw}.price_catalogues"
        " FINAL ORDER BY fetched_at DESC, version DESC LIMIT 1"
    )
    if not result.result_rows:
        return None
    version, document, sha256, source, fetched_at, changes = result.result_rows[0]
    return StoredCatalogue(version, _text(document), _text(sha256), source, fetched_at, changes)


def is_stored(client: Client, databases: Databases, version: str) -> bool:
    result = client.query(
        f"SELECT count() FROM {databases.raw}.price_catalogues WHERE version = {{version:String}}",
        parameters={"version": version},
    )
    return bool(result.result_rows[0][0])


def store_catalogue(
    client: Client,
    databases: Databases,
    *,
    version: str,
    document: str,
    source: str,
    fetched_at: datetime,
    changes: str,
) -> StoredCatalogue:
    """Store one version (the caller validated it); it is in force from now on."""
    stored = StoredCatalogue(
        version=version,
        document=document,
        sha256=document_sha256(document),
        source=source,
        fetched_at=fetched_at,
        changes=changes,
    )
    client.insert(
        f"{databases.raw}.price_catalogues",
        [[stored.version, stored.document, stored.sha256, stored.source, stored.fetched_at, stored.changes]],
        column_names=["version", "document", "sha256", "source", "fetched_at", "changes"],
    )
    return stored


def document_sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _text(value: str | bytes) -> str:
    # FixedString comes back as bytes unless the client is told otherwise.
    return value.decode() if isinstance(value, bytes) else value
