"""Recorder addon: hands each finished call to the store's writer, with its project.

The hook itself only resolves the attribution and enqueues (microseconds on the event loop, which
matters: mitmproxy holds the end of a response until the ``response`` hook returns). Pricing and
row building run in the writer thread, in :class:`RowBuilder`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from pydantic import ValidationError

from halton_meter.attribution import ATTRIBUTION, Attributed, Attribution
from halton_meter.capture import CALL, CapturedCall
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.protocol import MAX_DURATION_MS, RequestRow
from halton_meter.routing import ROUTE
from halton_meter.store import NANO, BatchWriter, StoredCall
from halton_meter.usage import Usage

if TYPE_CHECKING:
    from mitmproxy import http

    from halton_meter.pricing import PriceBook

logger = logging.getLogger(__name__)

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


class Recorder:
    """Submits finished calls to the writer. See the module docstring."""

    def __init__(self, writer: BatchWriter[CapturedCall], attribution: Attribution, health: Health) -> None:
        self.writer = writer
        self.attribution = attribution
        self.health = health
        self._waiting: set[asyncio.Future[Attributed]] = set()
        # Metered calls not yet handed to the writer (or to a directory lookup). Tracked here, in the last
        # addon, so that a call never looks settled between capture finishing it and this addon taking it.
        self.in_flight: set[str] = set()

    @property
    def waiting(self) -> int:
        """Finished calls held back until their directory lookup ends."""
        return len(self._waiting)

    @fail_open("recorder.requestheaders")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if ROUTE in flow.metadata:
            self.in_flight.add(flow.id)

    @fail_open("recorder.response")
    async def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    @fail_open("recorder.error")
    async def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    async def done(self) -> None:
        # Calls still waiting for a directory lookup are written before the writer closes.
        if self._waiting:
            await asyncio.wait(list(self._waiting), timeout=5)

    def _record(self, flow: http.HTTPFlow) -> None:
        try:
            self._hand_over(flow)
        finally:
            self.in_flight.discard(flow.id)

    def _hand_over(self, flow: http.HTTPFlow) -> None:
        call: CapturedCall | None = flow.metadata.pop(CALL, None)
        if call is None:
            return
        value = flow.metadata.get(ATTRIBUTION)
        attributed = self.attribution.resolve(value)
        if attributed is not None:
            self._submit(call, attributed)
            return
        # The directory lookup is still running: never hold the response for it.
        assert isinstance(value, asyncio.Future)
        self._waiting.add(value)

        def submit_later(done: asyncio.Future[Attributed]) -> None:
            self._waiting.discard(done)
            self._submit(
                call,
                self.attribution.resolve(done) or Attributed(self.attribution.default_project, "default"),
            )

        value.add_done_callback(submit_later)

    def _submit(self, call: CapturedCall, attributed: Attributed) -> None:
        call.project = attributed.project
        call.attribution_tier = attributed.tier
        self.writer.submit(call)


class RowBuilder:
    """Prices a captured call and turns it into the stored row (runs in the writer thread)."""

    def __init__(self, pricebook: PriceBook, machine_id: str, health: Health) -> None:
        self.pricebook = pricebook
        self.machine_id = machine_id
        self.health = health

    def __call__(self, call: CapturedCall) -> StoredCall:
        usage = call.usage
        cost: Decimal | None = None
        price_card: str | None = None
        if usage is None:
            reason = "no response from the provider" if call.status_code is None else "response not read"
        else:
            try:
                price = self.pricebook.price(call.info, usage, call.started_at)
                cost, price_card, reason = price.cost_usd, price.price_card, price.unpriced_reason
            except Exception as exc:
                logger.exception("pricing failed for %s %s", call.info.provider, call.info.model_requested)
                self.health.error("pricing", repr(exc))
                reason = "pricing failed"
        if cost is not None:
            cost = cost.quantize(NANO, rounding=ROUND_HALF_EVEN)
            reason = None
        error = call.error
        if call.capture_failed and error is None:
            error = "capture failed; the row may lack detail"
        row = self._row(call, usage or Usage(), cost, price_card)
        if row is None:
            # The parser produced counts our convention rejects: keep the call, drop the counts.
            self.health.error("row.invalid", f"{call.info.provider} {call.info.endpoint}")
            bare = replace(call, project="default", attribution_tier="default")
            row = self._row(call, Usage(), None, None) or self._row(bare, Usage(), None, None)
            reason, error = "usage failed validation", error or "usage failed validation"
            if row is None:
                raise ValueError(f"call {call.request_uid} cannot be stored even without usage")
        return StoredCall(
            row=row,
            unpriced_reason=reason if row.cost_usd is None else None,
            service_tier_requested=call.info.service_tier,
            billed_cost_usd=usage.billed_cost_usd if usage else None,
            extra_units=dict(usage.extra_units) if usage else {},
            parse_errors=usage.parse_errors if usage else 0,
            error=error,
            request_body=call.request_body,
            response_body=call.response_body,
            bodies_truncated=call.bodies_truncated,
        )

    def _row(
        self, call: CapturedCall, usage: Usage, cost: Decimal | None, price_card: str | None
    ) -> RequestRow | None:
        info = call.info
        latency = int((call.ended_at - call.started_at).total_seconds() * 1000)
        try:
            return RequestRow(
                request_uid=call.request_uid,
                machine_id=self.machine_id,
                started_at=call.started_at,
                ended_at=call.ended_at,
                provider=info.provider,
                model_requested=_clip(info.model_requested, 256),
                model_served=_clip(usage.model_served, 256),
                endpoint=_clip(info.endpoint, 512) or "/",
                status_code=call.status_code,
                streamed=info.streamed,
                complete=usage.complete,
                service_tier=_clip(usage.service_tier or info.service_tier, 64),
                batch=info.batch,
                cost_usd=cost,
                price_card=_clip(price_card, 256),
                project=call.project,
                attribution_tier=call.attribution_tier,
                prompt_hash=info.prompt_hash,
                provider_request_id=_clip(usage.provider_request_id, 256),
                latency_ms=_duration(latency),
                ttfb_ms=_duration(call.ttfb_ms),
                **{name: getattr(usage, name) for name in _TOKEN_FIELDS},
            )
        except ValidationError:
            logger.warning("row for %s failed validation", call.request_uid, exc_info=True)
            return None


def _duration(ms: int | None) -> int | None:
    """A duration the protocol can carry: below zero is 0 (clock resolution), past MAX_DURATION_MS (49 days:
    the wall clock jumped during the call) is not known, so the row is kept, not refused."""
    if ms is None or ms > MAX_DURATION_MS:
        return None
    return max(ms, 0)


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None
