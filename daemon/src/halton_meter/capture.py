"""Capture addon: reads what each LLM call asked for and what it used, as the bytes go by.

For a flow that :mod:`halton_meter.routing` marked as a provider call:

* ``request`` reads the request once its body is in (model, endpoint, streaming, prompt hash);
* ``responseheaders`` builds the provider's parser and sets ``flow.response.stream`` to a tap that
  hands a decoded copy of each chunk to the parser and returns the chunk itself unchanged. Every
  response is tapped this way, streamed or not, so no body is ever buffered by the meter;
* ``response`` / ``error`` settle the usage (``complete=False`` for a cut-off stream) and leave a
  :class:`CapturedCall` in ``flow.metadata`` for the recorder.

The moment a call is *answered* it is handed to ``on_answered`` (the recorder journals it there),
before the last byte reaches the client: mitmproxy writes each streamed chunk to the client as soon
as the tap returns it and runs the ``response`` hook only after the body ended, so a client can hold
its whole answer before that hook. The tap therefore settles the call itself on the chunk that
completes the body (the ``Content-Length``-th byte), or, for a body without a length, at its end
(``b""``, before mitmproxy sends the terminating chunk). When a stream's closing event (``[DONE]``,
``message_stop``...) arrives before that, a snapshot of the call is handed over on that chunk too: a
client reading events can stop there. Unstreamed responses (no body) are answered in ``response``,
which mitmproxy runs before sending them.

A batch results download (:mod:`halton_meter.providers.batch_results`) is one call that carries many:
its :class:`CapturedCall` holds one result per batched request, and the recorder stores a row for each.

Nothing here can break a call: hooks are wrapped by :func:`~halton_meter.failopen.fail_open`, the
tap catches everything itself, and a failure only makes the row less detailed (and is counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mitmproxy import ctx, exceptions

from halton_meter import providers
from halton_meter.content_coding import Decoder, UnsupportedEncoding, decoder_for
from halton_meter.failopen import FAILED, fail_open
from halton_meter.health import Health
from halton_meter.origin import CallOrigin
from halton_meter.providers.batch_results import BatchResult, BatchResultsParser, download_uid
from halton_meter.routing import ROUTE, Route
from halton_meter.usage import RequestInfo, ResponseParser, Usage

if TYPE_CHECKING:
    from mitmproxy import http

logger = logging.getLogger(__name__)

STATE = "halton.capture"
CALL = "halton.call"
# Set (before capture's responseheaders) on a flow whose body another addon must change: no tap is put on
# it, mitmproxy buffers the body, and capture reads it whole in ``response`` (halton_meter.batch_links).
BUFFER = "halton.buffer"

# Reading a request body this large (an image, a long context) is moved off the event loop.
OFF_LOOP_REQUEST_BYTES = 512 * 1024


@dataclass
class CapturedCall:
    """Everything capture learned about one call; the recorder adds a project, a price and a row."""

    request_uid: uuid.UUID
    info: RequestInfo
    usage: Usage | None
    status_code: int | None
    started_at: datetime
    ended_at: datetime
    ttfb_ms: int | None
    error: str | None = None
    capture_failed: bool = False
    request_body: bytes | None = None
    response_body: bytes | None = None
    bodies_truncated: bool = False
    project: str = "default"
    attribution_tier: str = "default"
    journaled_in: list[int] = field(default_factory=list)  # journal segments holding its records
    # A batch results download: one result per batched request, each stored as a row of its own.
    results: list[BatchResult] = field(default_factory=list)
    timed: bool = True  # False for a batched request: the meter did not see it run (no latency)
    origin: CallOrigin | None = None  # repository, branch, ticket and tool of the caller (attribution)


@dataclass
class _CallState:
    info: RequestInfo
    parser: ResponseParser | None = None
    decoder: Decoder | None = None
    first_byte_at: float | None = None
    remaining: int | None = None  # body bytes still due, when the response has a Content-Length
    broken: bool = False
    finished: bool = False
    answered: bool = False
    request_body: bytes | None = None
    response_body: bytearray | None = None
    truncated: bool = False
    failures: list[str] = field(default_factory=list)


class _Tap:
    """The ``flow.response.stream`` callable: sees each chunk, always returns it unchanged."""

    __slots__ = ("capture", "flow", "state")

    def __init__(self, capture: Capture, flow: http.HTTPFlow, state: _CallState) -> None:
        self.capture = capture
        self.flow = flow
        self.state = state

    def __call__(self, chunk: bytes) -> bytes:
        state = self.state
        if state.finished:
            return chunk
        ended = not chunk  # mitmproxy calls the tap with b"" once the body has ended
        if chunk and state.remaining is not None:
            state.remaining -= len(chunk)
            ended = state.remaining <= 0
        if not state.broken:
            try:
                if chunk:
                    if state.first_byte_at is None:
                        state.first_byte_at = time.time()
                    self.capture._fault("chunk")
                    self._feed(state.decoder.decode(chunk) if state.decoder else b"")
                if ended and state.decoder:
                    self._feed(state.decoder.flush())
            except Exception as exc:
                # Stop reading this body but keep forwarding it; the row will say usage is incomplete.
                state.broken = True
                state.failures.append("capture.stream")
                logger.exception("reading a %s response failed; forwarding it untouched", state.info.provider)
                self.capture.health.error("capture.stream", repr(exc))
        # Before this chunk is returned (and sent): the client may hold its answer once it is.
        try:
            if ended:
                self.capture._finish(self.flow, error=None)
            elif not state.answered and state.parser is not None and state.parser.usage.complete:
                self.capture._answered_early(self.flow, state)
        except Exception as exc:
            logger.exception("settling a %s call failed; forwarding it untouched", state.info.provider)
            self.capture.health.error("capture.finish", repr(exc))
        return chunk

    def _feed(self, data: bytes) -> None:
        if not data:
            return
        state = self.state
        if state.parser is not None:
            state.parser.feed(data)
        if state.response_body is not None:
            self.capture._keep(state, state.response_body, data)


class Capture:
    """Reads request info and response usage of metered flows. See the module docstring."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.capture_bodies = False
        self.body_max_bytes = 256 * 1024
        # Seams for tests: swap the provider functions or inject a failure at a named stage
        # ("request", "responseheaders", "chunk", "finish") to prove the proxy fails open.
        self.read_request: Callable[..., RequestInfo] = providers.read_request
        self.parser_for: Callable[..., ResponseParser] = providers.parser_for
        self.fault: Callable[[str], None] | None = None
        # Told of each call the moment it is answered, before its last byte is released (the journal).
        self.on_answered: Callable[[http.HTTPFlow, CapturedCall], None] | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "halton_capture_bodies",
            bool,
            False,
            "Keep request and response bodies in the local database (never synced).",
        )
        loader.add_option(
            "halton_body_max_bytes", int, 256 * 1024, "Cap per body kept by halton_capture_bodies."
        )

    def configure(self, updated: set[str]) -> None:
        if "halton_body_max_bytes" in updated:
            if ctx.options.halton_body_max_bytes < 0:
                raise exceptions.OptionsError("halton_body_max_bytes must be 0 or more")
            self.body_max_bytes = ctx.options.halton_body_max_bytes
        if "halton_capture_bodies" in updated:
            self.capture_bodies = ctx.options.halton_capture_bodies

    # -- hooks ---------------------------------------------------------------------------------

    @fail_open("capture.request")
    async def request(self, flow: http.HTTPFlow) -> None:
        route: Route | None = flow.metadata.get(ROUTE)
        if route is None or flow.response is not None:
            return
        self._fault("request")
        body = flow.request.raw_content or b""
        headers = flow.request.headers
        method = flow.request.method
        if len(body) > OFF_LOOP_REQUEST_BYTES:
            info = await asyncio.to_thread(
                self.read_request, route.provider, method, route.path, headers, body
            )
        else:
            info = self.read_request(route.provider, method, route.path, headers, body)
        state = _CallState(info=info)
        if self.capture_bodies:
            state.request_body = self._capped(state, flow.request.get_content(strict=False) or b"")
            state.response_body = bytearray()
        flow.metadata[STATE] = state

    @fail_open("capture.responseheaders")
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        if state is None or flow.response is None or flow.metadata.get(BUFFER):
            return
        # The tap goes on first: whatever fails below, the body still streams instead of buffering.
        flow.response.stream = _Tap(self, flow, state)
        self._fault("responseheaders")
        headers = flow.response.headers
        state.remaining = _content_length(headers)
        try:
            state.decoder = decoder_for(headers.get("content-encoding"))
        except UnsupportedEncoding as exc:
            self.health.error("capture.content_encoding", str(exc))
            state.failures.append("capture.content_encoding")
            return
        state.parser = self.parser_for(state.info, flow.response.status_code, headers.get("content-type"))

    @fail_open("capture.response")
    async def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow, error=None)

    @fail_open("capture.error")
    async def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow, error=flow.error.msg if flow.error else "connection error")

    # -- internals -----------------------------------------------------------------------------

    def _fault(self, stage: str) -> None:
        if self.fault is not None:
            self.fault(stage)

    def _state(self, flow: http.HTTPFlow) -> _CallState | None:
        state = flow.metadata.get(STATE)
        if state is None and (route := flow.metadata.get(ROUTE)) is not None:
            # The request hook failed or never ran: record the call with what the path tells.
            endpoint = route.path.split("?", 1)[0] or "/"
            state = _CallState(info=RequestInfo(route.provider, endpoint, None, streamed=False))
            state.failures.append("capture.request")
            flow.metadata[STATE] = state
        return state

    def _finish(self, flow: http.HTTPFlow, error: str | None) -> None:
        state = self._state(flow)
        if state is None or state.finished:
            return
        state.finished = True
        response = flow.response
        if response is not None and state.parser is None and not callable(response.stream):
            # No tap was installed (responseheaders failed early): the body was buffered, read it now.
            state.parser = self.parser_for(
                state.info, response.status_code, response.headers.get("content-type")
            )
            body = response.get_content(strict=False) or b""
            if body:
                state.parser.feed(body)
        usage: Usage | None = None
        if state.parser is not None:
            try:
                self._fault("finish")
                usage = state.parser.finish()
            except Exception as exc:
                # Still record the call, without usage: a call is never dropped for a parser bug.
                logger.exception("settling a %s response failed", state.info.provider)
                self.health.error("capture.finish", repr(exc))
                state.failures.append("capture.finish")
        call = self._call(flow, state, usage, error)
        flow.metadata[CALL] = call
        self.health.event("calls.captured")
        self._answered(flow, state, call)

    def _answered_early(self, flow: http.HTTPFlow, state: _CallState) -> None:
        """The stream's closing event went by, more bytes may follow: hand over a snapshot of the call."""
        usage = state.parser.usage if state.parser is not None else None
        snapshot = replace(usage, extra_units=dict(usage.extra_units)) if usage is not None else None
        self._answered(flow, state, self._call(flow, state, snapshot, None))

    def _answered(self, flow: http.HTTPFlow, state: _CallState, call: CapturedCall) -> None:
        state.answered = True
        if self.on_answered is None:
            return
        try:
            self.on_answered(flow, call)
        except Exception as exc:
            # The call is still recorded when it ends; only its early, durable copy is missing.
            logger.exception("handing over an answered %s call failed", state.info.provider)
            self.health.error("capture.answered", repr(exc))

    def _call(
        self, flow: http.HTTPFlow, state: _CallState, usage: Usage | None, error: str | None
    ) -> CapturedCall:
        response = flow.response
        request = flow.request
        started = request.timestamp_start
        ended = (response.timestamp_end if response is not None else None) or time.time()
        first = state.first_byte_at or (response.timestamp_start if response is not None else None)
        failures = state.failures + flow.metadata.get(FAILED, [])
        if error is None and state.broken:
            error = "capture failed mid-body; usage incomplete"
        results: list[BatchResult] = []
        request_uid = _uid(flow.id)
        if isinstance(state.parser, BatchResultsParser) and state.finished and state.parser.results:
            # Keyed by what was downloaded, like its results: downloading it again records nothing new.
            results = state.parser.results
            request_uid = download_uid(state.info.provider, state.info.resource_id or "")
        return CapturedCall(
            request_uid=request_uid,
            info=state.info,
            usage=usage,
            status_code=response.status_code if response is not None else None,
            started_at=datetime.fromtimestamp(started, UTC),
            ended_at=datetime.fromtimestamp(max(ended, started), UTC),
            ttfb_ms=int((first - started) * 1000) if first else None,
            error=error,
            capture_failed=bool(failures),
            request_body=state.request_body,
            response_body=bytes(state.response_body) if state.response_body is not None else None,
            bodies_truncated=state.truncated,
            results=results,
        )

    def _capped(self, state: _CallState, data: bytes) -> bytes:
        if len(data) > self.body_max_bytes:
            state.truncated = True
            return data[: self.body_max_bytes]
        return data

    def _keep(self, state: _CallState, buffer: bytearray, data: bytes) -> None:
        room = self.body_max_bytes - len(buffer)
        if room <= 0:
            state.truncated = state.truncated or bool(data)
            return
        if len(data) > room:
            state.truncated = True
        buffer.extend(data[:room])


def _content_length(headers: http.Headers) -> int | None:
    """The body length the response announces, if it is framed by one (not chunked)."""
    if "transfer-encoding" in headers:
        return None
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _uid(flow_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(flow_id)  # mitmproxy flow ids are uuid4s: reuse them to match logs to rows
    except ValueError:
        return uuid.uuid4()
