"""Anthropic Messages API: reading requests and usage (JSON and SSE).

Wire facts this module normalises (see ``halton_meter.protocol`` for our convention):

- ``usage.input_tokens`` on Anthropic's wire EXCLUDES cache reads and cache writes, so our
  ``input_tokens`` = ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
- ``usage.cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` split the cache
  writes (1-hour writes cost more); without the split every write counts as a 5-minute write.
- In a stream, ``message_start.message.usage`` carries the input and cache counts, and each
  ``message_delta.usage`` is CUMULATIVE: it replaces the counts it carries (newer APIs repeat the
  input and cache counts there too); it is never added.
- ``usage.output_tokens`` already includes thinking tokens; ``output_tokens_details.thinking_tokens``
  (newer APIs) breaks them out and becomes our ``reasoning_tokens``.
- ``usage.server_tool_use.web_search_requests`` is billed per search: it goes to ``extra_units``.
- ``usage.inference_geo`` ("us", "global") is where the call was served; US-only inference is billed at a
  regional multiplier. It becomes ``region``.
- A count Anthropic did not send stays ``None`` (unknown), never 0.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from halton_meter.providers.json_body import count, text
from halton_meter.providers.request_info import json_object, prompt_hash
from halton_meter.providers.response_parser import BodyParser
from halton_meter.providers.sse import SseEvent
from halton_meter.usage import RequestInfo

logger = logging.getLogger(__name__)

_BATCH_ID = re.compile(r"^(/v1/messages/batches)/([^/]+)(/results|/cancel)?$")


def request_info(method: str, path: str, body: bytes) -> RequestInfo:
    """What an Anthropic request says about itself; ``path`` has no query string."""
    endpoint = path
    batch = False
    resource_id = None
    if path.startswith("/v1/messages/batches"):
        batch = True
        match = _BATCH_ID.match(path)
        if match:
            endpoint = match.group(1) + "/{batch_id}" + (match.group(3) or "")
            resource_id = match.group(2)[:256] if match.group(3) == "/results" else None
    document = json_object(body)
    model = text(document.get("model")) if document else None
    streamed = bool(document.get("stream") is True) if document else False
    tier = text(document.get("service_tier"), 64) if document else None
    digest = None
    if document and path in ("/v1/messages", "/v1/complete"):
        digest = prompt_hash(
            {
                "model": document.get("model"),
                "system": document.get("system"),
                "messages": document.get("messages", document.get("prompt")),
                "tools": document.get("tools"),
            }
        )
    return RequestInfo(
        provider="anthropic",
        endpoint=endpoint,
        model_requested=model,
        streamed=streamed,
        batch=batch,
        service_tier=tier,
        prompt_hash=digest,
        resource_id=resource_id,
    )


class AnthropicParser(BodyParser):
    """Usage of one Messages API response; ``message_delta`` counts replace, never add."""

    def __init__(self, info: RequestInfo, status_code: int, content_type: str | None) -> None:
        super().__init__(info, status_code, content_type)
        # Anthropic's own fields, as last reported; normalised into self.usage by _apply().
        self._wire: dict[str, Any] = {}

    def on_json(self, document: Any) -> None:
        if not isinstance(document, dict):
            self._count_error("a body that is not a JSON object")
            return
        if document.get("type") == "error":
            self.on_error_body(document)
            self.usage.complete = True
            return
        if self.info.endpoint == "/v1/messages/count_tokens":
            # Counting tokens is free: nothing was consumed, whatever the count says.
            self.usage.input_tokens = 0
            self.usage.output_tokens = 0
            self.usage.complete = True
            return
        self._read_message(document)
        self.usage.complete = True

    def on_error_body(self, document: Any) -> None:
        if isinstance(document, dict):
            self.usage.provider_request_id = (
                text(document.get("request_id")) or self.usage.provider_request_id
            )

    def on_event(self, event: SseEvent) -> None:
        if event.event == "ping":
            return
        data = self.event_object(event)
        if data is None:
            return
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._read_message(message)
        elif kind == "message_delta":
            delta_usage = data.get("usage")
            if isinstance(delta_usage, dict):
                self._merge_usage(delta_usage)
        elif kind == "message_stop":
            self.usage.complete = True
        elif kind == "error":
            error = data.get("error")
            logger.info("anthropic stream reported an error mid-way: %s", error)
            self.on_error_body(data)

    def _read_message(self, message: dict[str, Any]) -> None:
        self.usage.provider_request_id = text(message.get("id")) or self.usage.provider_request_id
        self.usage.model_served = text(message.get("model")) or self.usage.model_served
        wire_usage = message.get("usage")
        if isinstance(wire_usage, dict):
            self._merge_usage(wire_usage)

    def _merge_usage(self, wire_usage: dict[str, Any]) -> None:
        # Every count present replaces the previous one (they are cumulative); absent ones survive.
        for key, value in wire_usage.items():
            if value is not None:
                self._wire[key] = value
        self._apply()

    def _apply(self) -> None:
        wire = self._wire
        usage = self.usage
        raw_input = count(wire.get("input_tokens"))
        cache_read = count(wire.get("cache_read_input_tokens"))
        five_min, one_hour = _cache_writes(wire)
        if raw_input is not None:
            # A count Anthropic did not send is unknown (None) in the row, and adds nothing to the input.
            usage.input_tokens = raw_input + (cache_read or 0) + (five_min or 0) + (one_hour or 0)
            usage.cache_read_tokens = cache_read
            usage.cache_write_tokens = five_min
            usage.cache_write_1h_tokens = one_hour
        output = count(wire.get("output_tokens"))
        if output is not None:
            usage.output_tokens = output
        details = wire.get("output_tokens_details")
        if isinstance(details, dict):
            thinking = count(details.get("thinking_tokens"))
            if thinking is not None and (output is None or thinking <= output):
                usage.reasoning_tokens = thinking
        tier = text(wire.get("service_tier"), 64)
        if tier:
            usage.service_tier = tier
        region = text(wire.get("inference_geo"), 32)
        if region:
            usage.region = region
        server_tools = wire.get("server_tool_use")
        if isinstance(server_tools, dict):
            for key in ("web_search_requests", "web_fetch_requests"):
                units = count(server_tools.get(key))
                if units is not None:  # 0 searches is a fact; an absent count stays unknown
                    usage.extra_units[key] = units


def _cache_writes(wire: dict[str, Any]) -> tuple[int | None, int | None]:
    """(5-minute writes, 1-hour writes), None for what Anthropic did not send. The split, when present,
    must add up to the total.

    A ``message_delta`` may update ``cache_creation_input_tokens`` without repeating the split; the
    total is authoritative, so the 1-hour part is kept (capped) and the rest counts as 5-minute.
    """
    total = count(wire.get("cache_creation_input_tokens"))
    split = wire.get("cache_creation")
    five_min = one_hour = None
    if isinstance(split, dict):
        five_min = count(split.get("ephemeral_5m_input_tokens"))
        one_hour = count(split.get("ephemeral_1h_input_tokens"))
    if five_min is None and one_hour is None:
        return total, None  # without the split every write is taken as a 5-minute one
    if total is None or total == (five_min or 0) + (one_hour or 0):
        return five_min, one_hour
    one_hour = min(one_hour or 0, total)
    return total - one_hour, one_hour
