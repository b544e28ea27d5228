"""Queries in flight by the id the client gave them: one query per id, and a way to stop one.

chDB names each query with an id of its own; the server tags every query with the client's id in its
`log_comment` setting (handler), so the engine's process list can find it by that id.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from halton_warehouse.server.engine import ConnectionPool, quote_literal
from halton_warehouse.server.wire_errors import ClickHouseError, EngineError

logger = logging.getLogger(__name__)

QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING = 216


class RunningQueries:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool  # an admin pool: KILL needs the right to see every query
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def register(self, query_id: str) -> Iterator[None]:
        with self._lock:
            if query_id in self._ids:
                raise ClickHouseError(
                    QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING,
                    f"Query with id = {query_id} is already running",
                    name="QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
                )
            self._ids.add(query_id)
        try:
            yield
        finally:
            with self._lock:
                self._ids.discard(query_id)

    def kill_soon(self, query_id: str) -> None:
        """Stop the query (its client went away) from a thread of its own: this may be called from the
        engine's progress callback, which must not wait on the engine."""
        threading.Thread(target=self._kill, args=(query_id,), name="kill-query", daemon=True).start()

    def _kill(self, query_id: str) -> None:
        connection = self._pool.acquire()
        try:
            connection.run(f"KILL QUERY WHERE Settings['log_comment'] = {quote_literal(query_id)} ASYNC")
            logger.info("query %s stopped: its client went away", query_id)
        except EngineError:
            logger.warning("stopping query %s failed", query_id, exc_info=True)
        finally:
            self._pool.release(connection, reusable=True)
