"""Spend guard addon: refuses a limited project's call at its budget, before it is forwarded.

It runs after capture has read the request (for the model) and before the recorder. A refused call gets
the provider-shaped 429 of :mod:`halton_meter.limit_errors` and is never sent upstream nor stored as a
request row; the refusal is kept in ``limit_events`` for the cloud. The decision is
:func:`halton_meter.spend_limits.decide`; this addon only gathers its inputs.

Cheap when nothing is limited: the limits are read from SQLite at most once a second, and a call waits for
nothing unless a fresh limit is in force. Then the call's project must be known, so a directory lookup
still running is awaited (briefly: past :data:`PROJECT_WAIT_S` the call passes). Fail open: any failure
here lets the call through untouched (``fail_open``), and so does every doubt.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mitmproxy import ctx, exceptions, http

from halton_meter import limit_errors
from halton_meter.attribution import ATTRIBUTION, Attribution
from halton_meter.capture import STATE
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.routing import ROUTE
from halton_meter.spend_limits import (
    OVERRIDE_HEADER,
    OVERRIDE_VALUE,
    LimitEvent,
    Limits,
    SpendLimit,
    decide,
    load,
    local_spend_since,
    record_event,
    take_override,
)
from halton_meter.store import connect

logger = logging.getLogger(__name__)

OVERRIDE = "halton.override"  # flow.metadata key: the call asked to pass its budget limit
PROJECT_WAIT_S = 2.0
RELOAD_EVERY_S = 1.0


class SpendGuard:
    """See the module docstring."""

    def __init__(self, health: Health, attribution: Attribution, db: Path) -> None:
        self.health = health
        self.attribution = attribution
        self.db = db
        self.window = timedelta(minutes=15)
        self._reader: sqlite3.Connection | None = None  # the event loop's, for the cached limits
        self._writer: sqlite3.Connection | None = None  # worker threads', under _lock
        self._lock = threading.Lock()
        self._limits = Limits(None, {})
        self._loaded_at = float("-inf")

    def load(self, loader) -> None:
        loader.add_option(
            "halton_limits_fresh_minutes",
            float,
            15.0,
            "A hard limit's spend figure older than this is stale: calls then pass.",
        )

    def configure(self, updated: set[str]) -> None:
        if "halton_limits_fresh_minutes" in updated:
            minutes = ctx.options.halton_limits_fresh_minutes
            if not minutes > 0:
                raise exceptions.OptionsError(f"halton_limits_fresh_minutes: {minutes!r} is not above 0")
            self.window = timedelta(minutes=minutes)

    def done(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()

    @fail_open("guard.requestheaders")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if ROUTE not in flow.metadata:
            return
        # Always removed from metered calls: the provider must never see our header.
        values = flow.request.headers.get_all(OVERRIDE_HEADER)
        if not values:
            return
        del flow.request.headers[OVERRIDE_HEADER]
        if any(value.strip().lower() == OVERRIDE_VALUE for value in values):
            flow.metadata[OVERRIDE] = True
        else:
            self.health.error(
                "guard.bad_override", f"{OVERRIDE_HEADER} {values[0][:40]!r} is not {OVERRIDE_VALUE!r}"
            )

    @fail_open("guard.request")
    async def request(self, flow: http.HTTPFlow) -> None:
        route = flow.metadata.get(ROUTE)
        if route is None or flow.response is not None:
            return
        limits = self._current()
        now = datetime.now(UTC)
        if not limits.limits or not limits.fresh(now, self.window):
            return  # nothing limited, or no figure to trust: the call passes (status says why)
        project = await self._project(flow)
        limit = limits.limits.get(project) if project else None
        if limit is None:
            return
        state = flow.metadata.get(STATE)
        model = state.info.model_requested if state is not None else None
        refusal = await asyncio.to_thread(
            self._check, limit, limits, route.provider, model, bool(flow.metadata.get(OVERRIDE)), now
        )
        if refusal is None:
            return
        status, body, headers = refusal
        flow.response = http.Response.make(status, body, headers)
        # Never sent, so not a request row: capture and the recorder leave a flow without a route alone.
        flow.metadata.pop(ROUTE, None)
        flow.metadata.pop(STATE, None)

    def _current(self) -> Limits:
        now = time.monotonic()
        if now - self._loaded_at >= RELOAD_EVERY_S:
            if self._reader is None:
                self._reader = connect(self.db)  # the writer migrated the store before the proxy listened
            self._limits = load(self._reader)
            self._loaded_at = now
        return self._limits

    async def _project(self, flow: http.HTTPFlow) -> str | None:
        value = flow.metadata.get(ATTRIBUTION)
        if isinstance(value, asyncio.Future) and not value.done():
            # asyncio.wait neither raises for the lookup's outcome nor cancels it when the time is up.
            await asyncio.wait({value}, timeout=PROJECT_WAIT_S)
            if not value.done():
                self.health.error(
                    "guard.project_unknown", "the caller's project was not known in time: call passed"
                )
                return None
        attributed = self.attribution.resolve(value)
        return attributed.project if attributed is not None else None

    def _check(
        self, limit: SpendLimit, limits: Limits, provider: str, model: str | None, header: bool, now: datetime
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """In a worker thread: None lets the call through; else the refusal to answer with."""
        with self._lock:
            if self._writer is None:
                self._writer = connect(self.db)
            conn = self._writer
            local = local_spend_since(conn, limit, now)
            decision = decide(limit, limits=limits, now=now, window=self.window, local_usd=local)
            if not decision.block:
                return None
            spend = decision.spend_usd or limit.budget_usd
            via = "header" if header else "command" if take_override(conn, limit.project) else None
            event = LimitEvent(
                kind="override" if via else "blocked",
                via=via,
                project=limit.project,
                provider=provider,
                model=model,
                at=now,
                budget_usd=limit.budget_usd,
                spend_usd=spend,
            )
            record_event(conn, event)
        if via is not None:
            self.health.event("guard.overridden")
            logger.info(
                "%s call of %s let through its budget limit (%s override)", provider, limit.project, via
            )
            return None
        self.health.event("guard.blocked")
        logger.info("%s call of %s refused: %s", provider, limit.project, decision.reason)
        return limit_errors.response_parts(
            provider, limit_errors.message(limit.project, limit.budget_usd, spend, now)
        )
