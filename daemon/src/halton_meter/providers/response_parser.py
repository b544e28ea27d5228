"""The shared body of every provider's response parser: routing bytes, never raising.

A provider parser subclasses :class:`BodyParser` and implements the hooks ``on_json`` (one decoded
JSON document: a whole body, or one element of a streamed JSON array), ``on_event`` (one SSE
event) and ``on_error_body`` (the body of a 4xx/5xx response). This class decides how
to read the body (SSE, one JSON object, a streamed JSON array), keeps memory bounded, inflates a
compressed body, and turns every exception into a counted parse error: the proxy must never see
one, and the bytes are only ever read, never changed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from halton_meter.providers.json_body import Inflater, JsonArrayStream, JsonObjectBuffer
from halton_meter.providers.sse import SseDecoder, SseEvent
from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)

_WHITESPACE = b" \t\r\n"
_SNIFF_BYTES = 5  # enough to tell "data:" / "event" / "retry" from the rest
_SSE_STARTS = (b"data", b"event", b":", b"id", b"retry", b"\xef\xbb\xbf")


class BodyParser:
    """Reads usage from one response body as it streams by. See the module docstring."""

    # Top-level fields worth salvaging from a JSON body too large to buffer whole: those a provider
    # writes last (read from the tail) and those it writes first (read from the head, where a nested
    # key of the same name is least likely to be met first).
    salvage_tail_keys: tuple[str, ...] = ("usage",)
    salvage_head_keys: tuple[str, ...] = ("id", "model")

    def __init__(self, info: RequestInfo, status_code: int, content_type: str | None) -> None:
        self.info = info
        self.status_code = status_code
        self.usage = Usage()
        self._own_errors = 0
        self._inflater = Inflater()
        # "sse", "json", "opaque" (neither: nothing to read), or "sniff" until the first bytes say.
        self._mode = _mode_for(content_type)
        self._sniffed = b""
        self._opaque_bytes = 0
        self._sse: SseDecoder | None = None
        self._object: JsonObjectBuffer | None = None
        self._array: JsonArrayStream | None = None
        self._finished = False

    # -- the ResponseParser protocol ---------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self._finished or not chunk:
            return
        try:
            self._route(self._inflater.feed(chunk))
        except Exception:  # fail open: count it, keep the proxy going
            self._count_error("reading a body chunk", exc_info=True)
        self._sync_errors()

    def finish(self) -> Usage:
        if self._finished:
            return self.usage
        self._finished = True
        try:
            self._route(self._inflater.finish())
            self._finish_body()
        except Exception:  # fail open
            self._count_error("finishing the body", exc_info=True)
        self._enforce_convention()
        self._sync_errors()
        return self.usage

    # -- hooks for provider parsers ------------------------------------------------------------

    def on_json(self, document: Any) -> None:
        """One decoded JSON document from a successful response."""

    def on_event(self, event: SseEvent) -> None:
        """One SSE event from a successful response."""

    def on_error_body(self, document: Any) -> None:
        """The decoded body of a 4xx/5xx response: read identifiers only, never tokens."""

    def event_object(self, event: SseEvent) -> dict[str, Any] | None:
        """The JSON object in an event's data; None (and one counted error) when it is not one."""
        try:
            data = json.loads(event.data)
        except ValueError:
            self._count_error(f"an SSE event whose data is not JSON ({event.data[:60]!r})")
            return None
        if not isinstance(data, dict):
            self._count_error(f"an SSE event whose data is not a JSON object ({event.data[:60]!r})")
            return None
        return data

    @property
    def is_error_response(self) -> bool:
        return self.status_code >= 400

    # -- routing -----------------------------------------------------------------------------

    def _route(self, data: bytes) -> None:
        if not data and not (self._finished and self._sniffed):
            return
        if self._mode == "sniff":
            self._sniffed += data
            stripped = self._sniffed.lstrip(_WHITESPACE)
            decided = stripped[:1] in (b"{", b"[") or len(stripped) >= _SNIFF_BYTES
            if not decided and not self._finished:
                return  # too little to tell yet: decide on the next chunk (or at the end)
            data, self._sniffed = self._sniffed, b""
            self._mode = _sniff(stripped)
        if self._mode == "opaque":
            self._opaque_bytes += len(data)
            return
        if self._mode == "sse":
            if self._sse is None:
                self._sse = SseDecoder()
            for event in self._sse.feed(data):
                self._handle_event(event)
        else:
            self._route_json(data)

    def _route_json(self, data: bytes) -> None:
        if self._array is None and self._object is None:
            stripped = data.lstrip(_WHITESPACE)
            if not stripped:
                return
            if stripped[:1] == b"[":
                self._array = JsonArrayStream()
            else:
                self._object = JsonObjectBuffer()
            data = stripped
        if self._array is not None:
            for raw in self._array.feed(data):
                self._handle_document_bytes(raw)
        elif self._object is not None:
            self._object.feed(data)

    def _finish_body(self) -> None:
        if self._mode == "sniff" and self._sniffed:
            self._route(b"")
        if self._mode == "opaque" and self._opaque_bytes and not self.is_error_response:
            # A gateway's HTML error page on a 5xx is expected; on a success it means we read nothing.
            self._count_error("a body that is neither JSON nor an event stream")
        if self._sse is not None:
            for event in self._sse.finish():
                self._handle_event(event)
        elif self._array is not None:
            self._own_errors += self._array.errors
            self._array.errors = 0
        elif self._object is not None and not self._object.empty:
            self._finish_object(self._object)

    def _finish_object(self, body: JsonObjectBuffer) -> None:
        if body.overflowed:
            fields = body.salvage(self.salvage_tail_keys, self.salvage_head_keys)
            if not fields:
                self._count_error("an oversized JSON body with no usage in its tail")
                return
            logger.debug("read %s from the head and tail of an oversized JSON body", sorted(fields))
            self._dispatch_document(fields)
            return
        try:
            document = body.parse()
        except ValueError:
            if not self.is_error_response:  # a mislabelled error page is expected, not a parse error
                self._count_error("a response body that is not JSON")
            return
        self._dispatch_document(document)

    def _handle_document_bytes(self, raw: bytes) -> None:
        try:
            document = json.loads(raw)
        except ValueError:
            self._count_error("a streamed JSON element that does not decode")
            return
        self._dispatch_document(document)

    def _dispatch_document(self, document: Any) -> None:
        try:
            if self.is_error_response:
                self.on_error_body(document)
                self.usage.complete = True  # the whole error body arrived; there is no usage to wait for
            else:
                self.on_json(document)
        except Exception:  # one odd document must not stop the rest
            self._count_error("a JSON document of an unexpected shape", exc_info=True)

    def _handle_event(self, event: SseEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # one odd event must not stop the rest
            self._count_error(f"an SSE event of an unexpected shape ({event.event!r})", exc_info=True)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _count_error(self, what: str, exc_info: bool = False) -> None:
        self._own_errors += 1
        logger.debug(
            "%s %s: could not read %s", self.info.provider, self.info.endpoint, what, exc_info=exc_info
        )

    def _enforce_convention(self) -> None:
        # A provider that reports more cached than total tokens (or more reasoning than output)
        # would make the row invalid and lose the call: clamp, and count it so it shows.
        usage = self.usage
        if usage.input_tokens is not None:
            remaining = usage.input_tokens
            for name in ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens"):
                value = getattr(usage, name)
                if value is not None and value > remaining:
                    self._count_error(f"{name}={value} beyond input_tokens={usage.input_tokens}")
                    value = remaining
                    setattr(usage, name, value)
                remaining -= value or 0
        if (
            usage.reasoning_tokens is not None
            and usage.output_tokens is not None
            and usage.reasoning_tokens > usage.output_tokens
        ):
            self._count_error(f"reasoning_tokens={usage.reasoning_tokens} beyond output_tokens")
            usage.reasoning_tokens = usage.output_tokens

    def _sync_errors(self) -> None:
        self.usage.parse_errors = self._own_errors + (self._sse.parse_errors if self._sse else 0)


def _sniff(start: bytes) -> str:
    if start[:1] in (b"{", b"["):
        return "json"
    if start.startswith(_SSE_STARTS):
        return "sse"
    return "opaque"


def _mode_for(content_type: str | None) -> str:
    if not content_type:
        return "sniff"
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        return "sse"
    if media.endswith("json") or media.endswith("+json"):
        return "json"
    return "sniff"
