"""A new price catalogue for this meter: read it, show what it changes, install it, price what was unpriced.

Where it comes from: the paired cloud's ``GET /v1/rates`` (the worker asks after each sync pass, and
``halton-meter rates update`` by default), a file, or an https URL (http only to this machine). It is
checked with the meter's own validator first: a catalogue that fails is refused with the message naming the
entry, and the one in force stays. Once installed (``install_catalogue``: every version kept), the rows
recorded without a cost are priced again (``reprice --unpriced``): a call to a model the old catalogue did
not know gets its price, and the row keeps its unpriced state in its history. A running daemon prices the
next call with the new catalogue on its own (:class:`~halton_meter.prices_in_force.LivePriceBook`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from halton_meter.catalogue import CatalogueError, install_catalogue, packaged_text, validate_catalogue
from halton_meter.catalogue.diff import CatalogueDiff, diff_catalogues
from halton_meter.catalogue.installed import installed_path
from halton_meter.hosts import is_loopback_host
from halton_meter.paths import MeterPaths
from halton_meter.prices_in_force import prices_in_force
from halton_meter.reprice import RepriceSummary, reprice
from halton_meter.settings import Settings
from halton_meter.store import open_store

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 30.0
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024  # the packaged catalogue is well under 1 MB


class UpdateError(RuntimeError):
    """The catalogue could not be read or was refused; the message says which and why."""


@dataclass(frozen=True)
class UpdateResult:
    diff: CatalogueDiff
    installed: bool
    repriced: RepriceSummary | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "diff": self.diff.to_json(),
            "repriced": self.repriced.to_json() if self.repriced is not None else None,
        }


def read_source(source: str) -> tuple[Any, str]:
    """The parsed document at ``source`` (a file path or an http(s) URL) and how to name it in messages."""
    if "://" in source:
        return _read_url(source), source
    path = Path(source).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UpdateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _parse(text, str(path)), str(path)


def read_cloud(settings: Settings, etag: str | None = None) -> Any | None:
    """The paired cloud's catalogue (``GET /v1/rates``), or None when ``etag`` names the one it has."""
    from halton_meter.cloud.client import CloudClient, CloudError
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        raise UpdateError(str(exc)) from exc
    if credentials is None:
        raise UpdateError(
            "this machine is not connected to Halton Meter Cloud: pass --from FILE_OR_URL, "
            "or run `halton-meter cloud connect`"
        )
    try:
        with CloudClient(settings.cloud_base_url) as client:
            return client.rates(etag)
    except CloudError as exc:
        raise UpdateError(f"could not get the catalogue from {settings.cloud_base_url}: {exc}") from exc


def in_force_document(catalogue_dir: Path) -> dict[str, Any]:
    """The catalogue in force as a document: the installed one if it reads, else the packaged one."""
    path = installed_path(catalogue_dir)
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            validate_catalogue(doc)
            return doc
        except (OSError, ValueError) as exc:  # CatalogueError is a ValueError
            logger.warning(
                "the installed catalogue %s is unusable (%s); comparing with the packaged one", path, exc
            )
    text = packaged_text()
    return json.loads(text)


def preview(paths: MeterPaths, doc: Any, where: str) -> CatalogueDiff:
    """What installing ``doc`` would change; ``UpdateError`` naming the bad entry when it is invalid."""
    try:
        validate_catalogue(doc)
    except CatalogueError as exc:
        raise UpdateError(f"{where}: {exc}\nThe catalogue in force is unchanged.") from exc
    return diff_catalogues(in_force_document(paths.catalogue), doc)


def install(
    settings: Settings, doc: Any, where: str, *, conn: sqlite3.Connection | None = None
) -> UpdateResult:
    """Validate, install and (when it is a new version) price the unpriced rows with it.

    ``conn``: the store to re-price (the worker's own); None opens the home's database if there is one.
    An invalid overrides file is not this catalogue's fault: the catalogue is installed, the re-pricing is
    skipped and says why in the log."""
    diff = preview(settings.paths, doc, where)
    if diff.empty and diff.old_version == diff.new_version:
        return UpdateResult(diff, installed=False)
    try:
        install_catalogue(settings.paths.catalogue, doc)
    except CatalogueError as exc:  # validated above; kept for a document changed under our feet
        raise UpdateError(f"{where}: {exc}\nThe catalogue in force is unchanged.") from exc
    except OSError as exc:
        raise UpdateError(f"could not write {settings.paths.catalogue}: {exc}") from exc
    return UpdateResult(diff, installed=True, repriced=reprice_unpriced(settings, conn))


def reprice_unpriced(settings: Settings, conn: sqlite3.Connection | None = None) -> RepriceSummary | None:
    """``reprice --unpriced`` with the prices now in force; None when there is no database yet."""
    from halton_meter.pricing import RatesFileError

    try:
        pricebook = prices_in_force(settings)
    except RatesFileError as exc:
        logger.warning("unpriced rows not re-priced: %s", exc)
        return None
    if conn is not None:
        return reprice(conn, pricebook, unpriced_only=True)
    if not settings.paths.db.exists():
        return None
    own = open_store(settings.paths.db)
    try:
        return reprice(own, pricebook, unpriced_only=True)
    finally:
        own.close()


def _read_url(url: str) -> Any:
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UpdateError(f"{url}: only https:// URLs (or a file path) can hold a catalogue")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise UpdateError(f"{url}: use https:// (plain http is accepted only from this machine)")
    try:
        with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise UpdateError(f"cannot fetch {url}: {exc}") from exc
    if response.status_code != 200:
        raise UpdateError(f"cannot fetch {url}: HTTP {response.status_code} {response.reason_phrase}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise UpdateError(f"{url}: over {MAX_DOCUMENT_BYTES} bytes; that is not a price catalogue")
    return _parse(response.text, url)


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UpdateError(f"{where} is not JSON: {exc}") from exc
