"""The catalogue in force on this machine: the newest one installed in the meter's home, else the packaged one.

A catalogue arrives after the meter was installed through ``halton-meter rates update`` or the cloud's
``GET /v1/rates`` on sync. It is validated before it is written, written atomically, and every version
ever installed is kept (``versions/<version>.json``), so a row priced by a catalogue can be explained later.
A broken installed file (edited by hand, disk trouble) is never fatal: the packaged catalogue prices instead
and the problem is logged.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from halton_meter.catalogue.entries import Catalogue
from halton_meter.catalogue.load import load_catalogue, parse_catalogue
from halton_meter.catalogue.validate import CatalogueError

logger = logging.getLogger(__name__)

IN_FORCE = "rates.json"
VERSIONS = "versions"


def installed_path(catalogue_dir: Path) -> Path:
    return catalogue_dir / IN_FORCE


def active_catalogue(catalogue_dir: Path) -> Catalogue:
    """The installed catalogue in ``catalogue_dir`` (``MeterPaths.catalogue``), else the packaged one."""
    path = installed_path(catalogue_dir)
    if path.exists():
        try:
            return load_catalogue(path)
        except CatalogueError as exc:
            logger.warning("ignoring the installed price catalogue (%s); using the packaged one", exc)
    return load_catalogue()


def install_catalogue(catalogue_dir: Path, doc: Any) -> Catalogue:
    """Validate ``doc`` (a parsed rates.json), keep it as a version and put it in force.

    Raises ``CatalogueError`` naming the bad entry and writes nothing when it is invalid: the catalogue in
    force stays.
    """
    catalogue = parse_catalogue(doc)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    versions = catalogue_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    _write_atomically(versions / f"{_file_safe(catalogue.version)}.json", text)
    _write_atomically(installed_path(catalogue_dir), text)
    return catalogue


def _file_safe(version: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in version)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
