"""Recorder addon: journals each answered call and hands each finished call to the store's writer.

Capture tells :meth:`Recorder.answered` the moment a call is answered, before its last byte reaches
the client: the call goes into the journal (:mod:`halton_meter.journal`) there, with one ``write()``.
The ``response`` / ``error`` hooks then only resolve the attribution and enqueue (microseconds on the
event loop, which matters: mitmproxy holds the end of a response until the ``response`` hook
returns). A call is journaled again only if what it records changed since (a stream's final usage,
a directory lookup that ended late): the journal's last record of a call wins. Pricing and row
building run in the writer thread, in :class:`RowBuilder` (``rows``: a batch results download makes
one row per batched request besides its own, all from one journal record); the writer releases the journal's
records once their rows are committed. :func:`replay_journal` puts what the journal holds into
SQLite at start and at stop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from halton_meter.attribution import ATTRIBUTION, Attributed, Attribution
from halton_meter.capture import CALL, CapturedCall
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.journal import Journal
from halton_meter.origin import CallOrigin
from halton_meter.protocol import MAX_DURATION_MS, RequestRow
from halton_meter.providers.batch_results import BatchResult
from halton_meter.routing import ROUTE
from halton_meter.store import (
    NANO,
    BatchWriter,
    StoredCall,
    add_error_counts,
    insert_calls,
    open_store,
    transaction,
)
from halton_meter.usage import RequestInfo, Usage

if TYPE_CHECKING:
    from mitmproxy import http

    from halton_meter.prices_in_force import LivePriceBook
    from halton_meter.pricing import PriceBook

logger = logging.getLogger(__name__)

JOURNALED = "halton.journaled"  # flow.metadata key: what the journal holds of this flow's call

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


@dataclass
class _Journaled:
    recorded: tuple[Any, ...]  # what the last record of the call says (see Recorder._journal)
    segments: list[int]


class Recorder:
    """Journals answered calls and submits finished ones to the writer. See the module docstring."""

    def __init__(
        self,
        writer: BatchWriter[CapturedCall],
        attribution: Attribution,
        health: Health,
        journal: Journal | None = None,
    ) -> None:
        self.writer = writer
        self.attribution = attribution
        self.health = health
        self.journal = journal
        self._waiting: set[asyncio.Future[Attributed]] = set()
        # Metered calls not yet handed to the writer (or to a directory lookup). Tracked here, in the last
        # addon, so that a call never looks settled between capture finishing it and this addon taking it.
        self.in_flight: set[str] = set()
        # Set while the daemon stops: calls under way finish, new ones on kept-alive connections are
        # refused (the connection closes before anything goes upstream, so a client can retry safely).
        self.refusing = False

    @property
    def waiting(self) -> int:
        """Finished calls held back until their directory lookup ends."""
        return len(self._waiting)

    @fail_open("recorder.requestheaders")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.refusing:
            flow.metadata.pop(ROUTE, None)  # never sent: nothing to record
            flow.kill()
            return
        if ROUTE in flow.metadata:
            self.in_flight.add(flow.id)

    @fail_open("recorder.response")
    async def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    @fail_open("recorder.error")
    async def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def answered(self, flow: http.HTTPFlow, call: CapturedCall) -> None:
        """Capture's ``on_answered``: journal the call before its last byte is released to the client."""
        attributed = self.attribution.resolve(flow.metadata.get(ATTRIBUTION))
        if attributed is not None:  # else the default, journaled again once the lookup ends
            call.project, call.attribution_tier = attributed.project, attributed.tier
            call.origin = attributed.origin
        self._journal(flow.metadata, call)

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
            self._submit(flow.metadata, call, attributed)
            return
        # The directory lookup is still running: never hold the response for it.
        assert isinstance(value, asyncio.Future)
        self._waiting.add(value)

        def submit_later(done: asyncio.Future[Attributed]) -> None:
            # Handed to the writer before it stops counting as waiting: `Meter.flush` (another thread) must
            # never see neither a waiting call nor its item in the writer's queue.
            try:
                self._submit(
                    flow.metadata,
                    call,
                    self.attribution.resolve(done) or Attributed(self.attribution.default_project, "default"),
                )
            finally:
                self._waiting.discard(done)

        value.add_done_callback(submit_later)

    def _submit(self, metadata: dict[str, Any], call: CapturedCall, attributed: Attributed) -> None:
        call.project = attributed.project
        call.attribution_tier = attributed.tier
        call.origin = attributed.origin
        self._journal(metadata, call)
        journaled: _Journaled | None = metadata.get(JOURNALED)
        if journaled is not None:
            call.journaled_in = journaled.segments
        self.writer.submit(call)

    def _journal(self, metadata: dict[str, Any], call: CapturedCall) -> None:
        if self.journal is None:
            return
        recorded = (
            call.usage,
            call.status_code,
            call.error,
            call.capture_failed,
            call.project,
            call.attribution_tier,
            call.origin,
        )
        journaled: _Journaled | None = metadata.get(JOURNALED)
        if journaled is None:
            journaled = metadata[JOURNALED] = _Journaled(recorded, [])
        elif journaled.recorded == recorded:
            return
        journaled.recorded = recorded
        try:
            segment = self.journal.append(encode_call(call))
        except Exception as exc:  # fail open: the call goes on, the writer still stores it
            logger.exception("journaling call %s failed", call.request_uid)
            self.health.error("journal.write", repr(exc))
            return
        if segment is not None:
            journaled.segments.append(segment)


class RowBuilder:
    """Prices a captured call and turns it into the stored row (runs in the writer thread)."""

    def __init__(self, pricebook: PriceBook | LivePriceBook, machine_id: str, health: Health) -> None:
        self.pricebook = pricebook
        self.machine_id = machine_id
        self.health = health

    def rows(self, call: CapturedCall) -> list[StoredCall]:
        """Every row a captured call makes: its own, then one per batch result it carried."""
        return [self(call), *(self(_result_call(call, result)) for result in call.results)]

    def __call__(self, call: CapturedCall) -> StoredCall:
        usage = call.usage
        cost: Decimal | None = None
        price_card: str | None = None
        if usage is None:
            reason = "no response from the provider" if call.status_code is None else "response not read"
        else:
            try:
                price = self.pricebook.price(call.info, usage, call.started_at, status_code=call.status_code)
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
                latency_ms=_duration(latency) if call.timed else None,
                ttfb_ms=_duration(call.ttfb_ms),
                region=_clip(usage.region, 32),
                web_search_requests=usage.extra_units.get("web_search_requests"),
                **{name: getattr(usage, name) for name in _TOKEN_FIELDS},
                **(vars(call.origin) if call.origin else {}),
            )
        except ValidationError:
            logger.warning("row for %s failed validation", call.request_uid, exc_info=True)
            return None


def _result_call(download: CapturedCall, result: BatchResult) -> CapturedCall:
    """One batched request, as a call: at the batch rate, in the download's project. A batch does not say
    when each request ran: it takes the download's start, and no latency."""
    info = RequestInfo(
        provider=download.info.provider,
        endpoint=result.endpoint,
        model_requested=None,
        streamed=False,
        batch=True,
    )
    return CapturedCall(
        request_uid=result.request_uid,
        info=info,
        usage=result.usage,
        status_code=result.status_code,
        started_at=download.started_at,
        ended_at=download.started_at,
        ttfb_ms=None,
        error=result.error,
        project=download.project,
        attribution_tier=download.attribution_tier,
        timed=False,
        origin=download.origin,
    )


def _duration(ms: int | None) -> int | None:
    """A duration the protocol can carry: below zero is 0 (clock resolution), past MAX_DURATION_MS (49 days:
    the wall clock jumped during the call) is not known, so the row is kept, not refused."""
    if ms is None or ms > MAX_DURATION_MS:
        return None
    return max(ms, 0)


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


# ---------------------------------------------------------------------------------------------------
# Journal records and their replay

_RECORD_VERSION = 1


def encode_call(call: CapturedCall) -> bytes:
    """One journal record: everything :class:`RowBuilder` needs to store the call later."""
    document = {
        "v": _RECORD_VERSION,
        "uid": str(call.request_uid),
        "info": vars(call.info),
        "usage": _usage_document(call.usage),
        "status": call.status_code,
        "started": call.started_at.isoformat(),
        "ended": call.ended_at.isoformat(),
        "ttfb": call.ttfb_ms,
        "error": call.error,
        "capture_failed": call.capture_failed,
        "project": call.project,
        "tier": call.attribution_tier,
        "request_body": _b64(call.request_body),
        "response_body": _b64(call.response_body),
        "truncated": call.bodies_truncated,
    }
    if call.origin is not None:
        document["origin"] = vars(call.origin)
    if call.results:
        # Tens of thousands for one download, encoded on the event loop: only what each result says.
        document["results"] = [
            {
                "uid": str(r.request_uid),
                "endpoint": r.endpoint,
                "status": r.status_code,
                "usage": {k: v for k, v in _usage_document(r.usage).items() if v is not None},
                "error": r.error,
            }
            for r in call.results
        ]
    return json.dumps(document, separators=(",", ":")).encode()


def decode_call(payload: bytes) -> CapturedCall:
    """The call a journal record holds; ValueError/KeyError/TypeError if it is not one."""
    document = json.loads(payload)
    if document.get("v") != _RECORD_VERSION:
        raise ValueError(f"unknown journal record version {document.get('v')!r}")
    return CapturedCall(
        request_uid=uuid.UUID(document["uid"]),
        info=RequestInfo(**document["info"]),
        usage=_usage_from(document["usage"]),
        status_code=document["status"],
        started_at=datetime.fromisoformat(document["started"]),
        ended_at=datetime.fromisoformat(document["ended"]),
        ttfb_ms=document["ttfb"],
        error=document["error"],
        capture_failed=document["capture_failed"],
        request_body=_unb64(document["request_body"]),
        response_body=_unb64(document["response_body"]),
        bodies_truncated=document["truncated"],
        project=document["project"],
        attribution_tier=document["tier"],
        origin=CallOrigin(**document["origin"]) if document.get("origin") else None,
        results=[
            BatchResult(uuid.UUID(r["uid"]), r["endpoint"], r["status"], _usage_from(r["usage"]), r["error"])
            for r in document.get("results", ())
        ],
    )


def _usage_document(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    document = dict(vars(usage))
    if document["billed_cost_usd"] is not None:
        document["billed_cost_usd"] = str(document["billed_cost_usd"])
    return document


def _usage_from(document: dict[str, Any] | None) -> Usage | None:
    if document is None:
        return None
    if document.get("billed_cost_usd") is not None:
        document["billed_cost_usd"] = Decimal(document["billed_cost_usd"])
    return Usage(**document)


@dataclass(frozen=True)
class Replayed:
    """What a replay found: calls recorded, rows it restored, damaged stretches it skipped."""

    calls: int
    restored: int
    damaged: int


def replay_journal(
    journal: Journal,
    db_path: Path,
    build: RowBuilder,
    health: Health,
    segments: Sequence[Path] | None = None,
) -> Replayed:
    """Store every journaled call SQLite lacks (idempotent on request_uid), then delete the segments.

    A damaged record (a torn tail after a crash mid-write) is skipped with a warning and counted
    (``journal.torn``); the records around it are still replayed. If the database cannot be written
    the segments stay, for the next start.
    """
    segments = journal.segments() if segments is None else list(segments)
    if not segments:
        return Replayed(0, 0, 0)
    calls: dict[uuid.UUID, CapturedCall] = {}
    damaged = 0
    for segment, payloads, damage in journal.read(segments):
        for stretch in damage:
            damaged += 1
            what = "a torn last record" if stretch.tail else "a damaged record"
            logger.warning(
                "journal %s: skipped %s (%d bytes at byte %d); the calls around it are restored",
                segment.name,
                what,
                stretch.length,
                stretch.offset,
            )
            health.error("journal.torn", f"{segment.name}: {what} of {stretch.length} bytes skipped")
        for payload in payloads:
            try:
                call = decode_call(payload)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("journal %s: skipped a record that is not a call: %s", segment.name, exc)
                health.error("journal.record", repr(exc))
                continue
            calls[call.request_uid] = call  # a later record of a call supersedes an earlier one
    conn = open_store(db_path)
    try:
        present = _present(conn, [str(uid) for uid in calls])
        rows: list[StoredCall] = []
        for uid, call in calls.items():
            if str(uid) in present:
                continue
            try:
                rows.extend(build.rows(call))
            except Exception as exc:
                logger.exception("could not turn journaled call %s into a row", uid)
                health.error("store.prepare", repr(exc))
        counts = health.take_unpersisted()
        try:
            with transaction(conn):
                # OR IGNORE as well: a writer that outlived its stop timeout may still be committing.
                restored = insert_calls(conn, rows, skip_existing=True)
                add_error_counts(conn, counts)
        except BaseException:
            health.give_back(counts)
            raise
    finally:
        conn.close()
    journal.delete(segments)
    if restored or damaged:
        logger.info(
            "journal replayed: %d calls recorded, %d were missing from the database and are now stored",
            len(calls),
            restored,
        )
    health.event("journal.restored", restored)
    return Replayed(len(calls), restored, damaged)


def _present(conn: sqlite3.Connection, uids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uids), 500):
        chunk = uids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        found.update(
            r[0]
            for r in conn.execute(f"SELECT request_uid FROM requests WHERE request_uid IN ({marks})", chunk)
        )
    return found


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text is not None else None
