"""Counters of what went wrong (and right) inside the daemon, so nothing fails silently.

Every caught exception in capture, attribution, pricing or storage is counted here under a short
kind (``capture.responseheaders``, ``store.write``...). The counts are served live on the loopback
``/v1/status`` route and persisted per day by the store's writer, so ``halton-meter status`` shows
them even after a restart.
"""

from __future__ import annotations

import threading
from collections import Counter


class Health:
    """Thread-safe counters: the proxy's event loop and the writer thread both write here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: Counter[str] = Counter()
        self._unpersisted: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self.last_error: str | None = None

    def error(self, kind: str, detail: str | None = None) -> None:
        with self._lock:
            self._errors[kind] += 1
            self._unpersisted[kind] += 1
            if detail:
                self.last_error = f"{kind}: {detail}"[:500]

    def event(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._events[kind] += n

    def errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def events(self) -> dict[str, int]:
        with self._lock:
            return dict(self._events)

    def take_unpersisted(self) -> dict[str, int]:
        """Counts not yet written to SQLite; the caller writes them or gives them back."""
        with self._lock:
            taken = dict(self._unpersisted)
            self._unpersisted.clear()
            return taken

    def give_back(self, counts: dict[str, int]) -> None:
        with self._lock:
            self._unpersisted.update(counts)
