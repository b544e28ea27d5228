"""The price catalogue the cloud shows and prices with: every reader goes through ``current_catalogue``.

Today that is the catalogue packaged with ``halton_meter`` (the meter's own ``rates.json``); once the cloud
stores the catalogues it refreshes, this one function returns the newest stored one and every page follows.
"""

from __future__ import annotations

import functools

from fastapi import Request

from halton_meter.catalogue import Catalogue, load_catalogue


@functools.cache
def _packaged() -> Catalogue:
    # Parsed once per process: the packaged file cannot change while the process runs.
    return load_catalogue()


async def current_catalogue(request: Request) -> Catalogue:
    """The catalogue in force in the cloud (the FastAPI dependency ``deps.Prices``)."""
    return _packaged()
