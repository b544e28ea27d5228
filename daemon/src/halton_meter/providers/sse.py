"""An incremental Server-Sent Events decoder for response bodies that stream past the proxy.

It follows the WHATWG event-stream rules (lines end in LF, CRLF or a lone CR; ``:`` starts a
comment; ``data`` lines of one event join with ``\\n``; one space after the colon is dropped; a
blank line dispatches the event) and accepts chunks split anywhere, even inside a CRLF pair or a
UTF-8 sequence. It keeps only the current partial line and the current event's fields, so memory
stays bounded by one event whatever the length of the stream.

A line that cannot be part of a valid stream (an unknown field name, bytes that are not UTF-8) is
counted in ``parse_errors`` and skipped; decoding carries on with the next line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Larger than any single event a provider sends (a Responses-API ``response.completed`` event
# repeats the whole output, so it can reach a few MiB); past this the event is dropped, not kept.
MAX_EVENT_BYTES = 32 * 1024 * 1024

_KNOWN_FIELDS = frozenset({"event", "data", "id", "retry"})
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its type (``message`` when the stream names none) and its data."""

    event: str
    data: str
    id: str | None = None


class SseDecoder:
    """Turns body chunks into :class:`SseEvent` objects; never raises on malformed input."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.parse_errors = 0
        self._max_event_bytes = max_event_bytes
        self._buffer = bytearray()  # the current partial line
        self._scan_from = 0  # bytes of _buffer already searched for a line end
        self._after_cr = False  # the previous chunk ended a line with CR: skip a leading LF
        self._at_start = True  # a UTF-8 BOM may open the stream
        self._event_type = ""
        self._data: list[str] = []
        self._event_bytes = 0
        self._last_id: str | None = None
        self._has_fields = False
        self._oversized = False  # the current event outgrew the limit: drop it at its blank line
        self._skipping_line = False  # the current line outgrew the limit: drop it at its line end

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Decode the next chunk; return the events it completed (often none, sometimes several)."""
        if not chunk:
            return []
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        self._buffer += chunk
        if self._at_start:
            if len(self._buffer) < len(_BOM) and _BOM.startswith(bytes(self._buffer)):
                return []
            self._at_start = False
            if self._buffer.startswith(_BOM):
                del self._buffer[: len(_BOM)]
        return self._drain_lines()

    def finish(self) -> list[SseEvent]:
        """The body ended. Dispatch an event whose lines all arrived but whose blank line did not.

        A final line cut off mid-way is dropped rather than parsed: the stream was truncated, and a
        half line would only produce a misleading parse error.
        """
        events: list[SseEvent] = []
        if self._buffer:
            logger.debug("SSE stream ended inside a line (%d bytes dropped)", len(self._buffer))
            self._buffer.clear()
            self._scan_from = 0
        self._skipping_line = False
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _drain_lines(self) -> list[SseEvent]:
        events: list[SseEvent] = []
        buffer = self._buffer
        start = 0
        pos = self._scan_from
        length = len(buffer)
        while pos < length:
            lf = buffer.find(b"\n", pos)
            cr = buffer.find(b"\r", pos, lf if lf != -1 else length)
            if cr == -1 and lf == -1:
                pos = length
                break
            if cr != -1:
                end = cr
                if cr + 1 < length:
                    nxt = cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
                else:
                    # CR is the last byte we have: the LF of a CRLF may be in the next chunk.
                    nxt = cr + 1
                    self._after_cr = True
            else:
                end = lf
                nxt = lf + 1
            if self._skipping_line:
                self._skipping_line = False
            else:
                event = self._process_line(bytes(buffer[start:end]))
                if event is not None:
                    events.append(event)
            start = pos = nxt
        del buffer[:start]
        self._scan_from = len(buffer)
        if len(buffer) > self._max_event_bytes:
            if not self._skipping_line:
                self._count_error(f"a line longer than {self._max_event_bytes} bytes")
            buffer.clear()
            self._scan_from = 0
            self._skipping_line = True
            self._oversized = True
        return events

    def _process_line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            return None  # a comment, e.g. a keep-alive
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._count_error("a line that is not UTF-8")
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name not in _KNOWN_FIELDS:
            self._count_error(f"a line with an unknown field {name[:40]!r}")
            return None
        if self._oversized:
            return None
        self._has_fields = True
        if name == "data":
            self._event_bytes += len(raw)
            if self._event_bytes > self._max_event_bytes:
                self._count_error(f"an event larger than {self._max_event_bytes} bytes")
                self._data.clear()
                self._oversized = True
                return None
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event = None
        if self._has_fields and self._data and not self._oversized:
            event = SseEvent(
                event=self._event_type or "message", data="\n".join(self._data), id=self._last_id
            )
        self._event_type = ""
        self._data = []
        self._event_bytes = 0
        self._has_fields = False
        self._oversized = False
        return event

    def _count_error(self, what: str) -> None:
        self.parse_errors += 1
        logger.debug("skipped %s in an SSE stream", what)
