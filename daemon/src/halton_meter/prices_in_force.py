"""The prices this meter uses: the user's overrides over the catalogue in force (installed, else packaged).

``prices_in_force`` builds them once (``reprice``, ``rates``). The daemon holds a :class:`LivePriceBook`:
the same prices, rebuilt when a new catalogue is installed under the meter's home (by ``halton-meter rates
update`` in another process, or by the cloud worker on sync), so a running daemon prices the next call with
it, no restart. It looks at the installed file's stat on each call it prices: that runs in the store
writer's thread, never on the proxy's event loop, and costs about a microsecond.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from halton_meter.catalogue import active_catalogue
from halton_meter.catalogue.installed import installed_path
from halton_meter.pricing import CallFacts, Price, PriceBook
from halton_meter.settings import Settings
from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)


def prices_in_force(settings: Settings) -> PriceBook:
    """Overrides + the catalogue in force; ``RatesFileError`` when the overrides file is invalid."""
    return PriceBook(settings.pricing_overrides, catalogue=active_catalogue(settings.paths.catalogue))


class LivePriceBook:
    """A :class:`PriceBook` that follows the installed catalogue (see the module docstring)."""

    def __init__(self, overrides_path: Path | None, catalogue_dir: Path) -> None:
        self._overrides_path = overrides_path
        self._installed = installed_path(catalogue_dir)
        self._catalogue_dir = catalogue_dir
        self._lock = threading.Lock()
        self._seen = self._stamp()
        # An invalid overrides file raises RatesFileError here, at start-up.
        self._book = PriceBook(overrides_path, catalogue=active_catalogue(catalogue_dir))

    @property
    def version(self) -> str:
        return self.current().version

    def current(self) -> PriceBook:
        """The prices for the next call: rebuilt first if another catalogue was installed since."""
        stamp = self._stamp()
        if stamp == self._seen:
            return self._book
        with self._lock:
            if stamp != self._seen:
                self._reload(stamp)
        return self._book

    def price(
        self, info: RequestInfo, usage: Usage, at: datetime, *, status_code: int | None = None
    ) -> Price:
        return self.current().price(info, usage, at, status_code=status_code)

    def price_facts(self, facts: CallFacts, *, streamed: bool = False, complete: bool = True) -> Price:
        return self.current().price_facts(facts, streamed=streamed, complete=complete)

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        try:
            book = PriceBook(self._overrides_path, catalogue=active_catalogue(self._catalogue_dir))
        except (ValueError, OSError) as exc:  # RatesFileError (overrides edited since the start)
            # Keep pricing with what we have; the stamp is remembered so this is logged once per change.
            logger.warning(
                "could not load the newly installed price catalogue (%s); keeping %s", exc, self._book.version
            )
        else:
            if book.catalogue.version != self._book.catalogue.version:
                logger.info(
                    "prices now from catalogue %s (was %s)",
                    book.catalogue.version,
                    self._book.catalogue.version,
                )
            self._book = book
        self._seen = stamp

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self._installed)
        except OSError:
            return None
        # install_catalogue replaces the file (a new inode), so a same-size rewrite within the clock's
        # granularity is still seen.
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
