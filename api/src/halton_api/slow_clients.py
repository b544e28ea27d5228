"""Clients that send their request too slowly (slowloris, slow POST): uvicorn has no timeout for them.

uvicorn closes idle keep-alive connections, but a connection that sends its headers a byte at a time, or
its body with long pauses, is held for as long as the client likes (measured: 40-75 s each, and longer is
only a matter of patience), and each one holds a socket and a protocol. `SlowClientProtocol` is uvicorn's
httptools protocol with three additions, all from `CloudSettings`:

- the request's headers must be complete within `http_header_timeout_seconds` of the connection opening
  (or of the first byte of the next request on a kept-alive connection): else 408 and close;
- while a body is coming, at most `http_body_timeout_seconds` may pass between two of its pieces: else
  408 (if no answer has started) and close. A pause is not the client's when we stopped reading (the
  app is behind) or when it waits for our `100 Continue`;
- at most `http_max_pending_connections` connections may be waiting for their headers at once: one more
  closes the one that has waited longest (a real client sends its headers in one packet, so the oldest
  waiting is almost always a slow one).

The settings reach the protocol through the app's lifespan state (`STATE_KEY`), so the protocol works however
uvicorn is started: `halton-cloud up` and `serve` name it (`CloudSettings.uvicorn_options()`), and so can
uvicorn's command line (`--http halton_api.slow_clients:SlowClientProtocol`). Without that state (another
app) it is plain uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from halton_api.cloud_settings import CloudSettings

log = logging.getLogger(__name__)

STATE_KEY = "halton_slow_client_guard"
_TIMEOUT_BODY = b"the request was not sent in time: send the headers, and each part of the body, promptly\n"
_BUSY_BODY = b"too many connections are still sending their request headers: retry\n"


def _close_with(transport: asyncio.BaseTransport, status: bytes, body: bytes) -> None:
    """A short plain-text answer, then close (nothing else is or will be written on this connection)."""
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )
    transport.write(head + body)  # type: ignore[attr-defined]
    transport.close()


@dataclass
class SlowClientGuard:
    """The limits, and the connections of one server still waiting for their headers (oldest first)."""

    header_timeout: float
    body_timeout: float
    max_pending: int
    pending: dict[SlowClientProtocol, None] = field(default_factory=dict)
    closed_slow: int = 0  # counted for the log line; a visible sign the limits are doing their job

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> SlowClientGuard:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_pending=settings.http_max_pending_connections,
        )

    def waiting(self, protocol: SlowClientProtocol) -> None:
        self.pending[protocol] = None
        if len(self.pending) > self.max_pending:
            oldest = next(iter(self.pending))
            self.done(oldest)
            oldest.evict()

    def done(self, protocol: SlowClientProtocol) -> None:
        self.pending.pop(protocol, None)

    def count_closed(self, why: str, client: Any) -> None:
        self.closed_slow += 1
        log.info("closed a slow connection from %s (%s; %d so far)", client, why, self.closed_slow)


class SlowClientProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read timeouts and a cap on connections still
    sending their headers (see the module docstring)."""

    def __init__(self, config, server_state, app_state: dict[str, Any], _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard: SlowClientGuard | None = app_state.get(STATE_KEY)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0

    # -- headers -------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()  # the next request on a kept-alive connection (no-op for the first one)

    def _await_headers(self) -> None:
        if self.guard is None or self._header_timer is not None:
            return
        self._header_timer = self.loop.call_later(self.guard.header_timeout, self._headers_too_slow)
        self.guard.waiting(self)

    def on_headers_complete(self) -> None:
        if self.guard is not None:
            self._stop_header_timer()
            self._body_seen = self.loop.time()
            self._body_timer = self.loop.call_later(self.guard.body_timeout, self._check_body)
        super().on_headers_complete()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self.guard is not None:
            self.guard.done(self)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        assert self.guard is not None
        self.guard.done(self)
        if self.transport.is_closing():
            return
        self.guard.count_closed(f"headers not complete after {self.guard.header_timeout:g} s", self.client)
        if self.cycle is None or self.cycle.response_complete:
            _close_with(self.transport, b"408 Request Timeout", _TIMEOUT_BODY)
        else:  # an earlier, pipelined request is still being answered: nothing may be written in between
            self.transport.close()

    def evict(self) -> None:
        """Closed to make room for a newer connection (`SlowClientGuard.waiting`)."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self.transport.is_closing():
            return
        assert self.guard is not None
        self.guard.count_closed(f"more than {self.guard.max_pending} connections waiting", self.client)
        if self.cycle is None or self.cycle.response_complete:
            _close_with(self.transport, b"503 Service Unavailable", _BUSY_BODY)
        else:
            self.transport.close()

    # -- body ----------------------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _check_body(self) -> None:
        self._body_timer = None
        assert self.guard is not None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue):
            self._body_seen = now  # we are the ones not reading: the client is not slow
        idle = now - self._body_seen
        if idle < self.guard.body_timeout:
            self._body_timer = self.loop.call_later(self.guard.body_timeout - idle, self._check_body)
            return
        self.guard.count_closed(f"no body for {idle:.1f} s", self.client)
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None:
            # What the app reads next is a disconnect, and what it still sends goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        if started:
            self.transport.close()
        else:
            _close_with(self.transport, b"408 Request Timeout", _TIMEOUT_BODY)

    # -- the end -------------------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        super().connection_lost(exc)
