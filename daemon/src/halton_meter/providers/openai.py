"""OpenAI APIs (Chat Completions, Responses, Completions, Embeddings, Batches), also Azure OpenAI.

Wire facts this module relies on:

- Chat Completions: ``usage.prompt_tokens`` INCLUDES ``prompt_tokens_details.cached_tokens``, and
  ``completion_tokens`` INCLUDES ``completion_tokens_details.reasoning_tokens`` — already our
  convention. A stream carries usage only when the request set ``stream_options.include_usage``: a
  last chunk with ``choices: []`` and the usage, then ``data: [DONE]``. Without it the tokens stay
  unknown (None), never zero.
- Responses API: usage arrives in ``response.completed`` (or ``response.incomplete`` /
  ``response.failed``, which also close the stream) as ``input_tokens`` (including
  ``input_tokens_details.cached_tokens``) and ``output_tokens`` (including
  ``output_tokens_details.reasoning_tokens``).
- Embeddings: ``usage.prompt_tokens`` only; nothing is generated, so output is 0.
- ``service_tier`` in the response is the tier that actually served the call.
- A count OpenAI did not send (``cached_tokens``, ``reasoning_tokens`` on older models) stays ``None``,
  never 0.

xAI speaks the same dialect; :mod:`halton_meter.providers.xai` adapts the few differences.
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

_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)(/.*)$")
# Path segments that are ids, replaced by a placeholder so endpoints group (and ids never leak).
_ID_SEGMENTS = [
    (re.compile(r"^(/v1/batches)/[^/]+(/cancel)?$"), r"\1/{batch_id}\2"),
    (re.compile(r"^(/v1/responses)/[^/]+(/input_items|/cancel)?$"), r"\1/{response_id}\2"),
    (re.compile(r"^(/v1/chat/completions)/[^/]+(/messages)?$"), r"\1/{completion_id}\2"),
    (re.compile(r"^(/v1/files)/[^/]+(/content)?$"), r"\1/{file_id}\2"),
]
_FILE_CONTENT = re.compile(r"^/v1/files/([^/]+)/content$")
_RESPONSE_CLOSING_EVENTS = ("response.completed", "response.incomplete", "response.failed")
_RESPONSE_EVENTS_WITH_BODY = ("response.created", "response.in_progress", *_RESPONSE_CLOSING_EVENTS)


def request_info(method: str, path: str, body: bytes, provider: str = "openai") -> RequestInfo:
    """What an OpenAI-dialect request says about itself; ``path`` has no query string."""
    endpoint, deployment = normalise_endpoint(path)
    # A file's content may be a batch output (providers.batch_results): its rows are keyed by the file id.
    file_id = (
        _FILE_CONTENT.match(path.removeprefix("/openai"))
        if endpoint == "/v1/files/{file_id}/content"
        else None
    )
    document = json_object(body)
    model = (text(document.get("model")) if document else None) or deployment
    streamed = bool(document.get("stream") is True) if document else False
    tier = text(document.get("service_tier"), 64) if document else None
    batch = endpoint.startswith("/v1/batches") or endpoint.startswith("/batches")
    digest = None
    if document and not batch:
        digest = prompt_hash(
            {
                "model": document.get("model") or deployment,
                "system": document.get("instructions"),
                "messages": _first_present(document, "messages", "input", "prompt"),
                "tools": document.get("tools") or document.get("functions"),
                "previous_response_id": document.get("previous_response_id"),
            }
        )
    return RequestInfo(
        provider=provider,
        endpoint=endpoint,
        model_requested=model,
        streamed=streamed,
        batch=batch,
        service_tier=tier,
        prompt_hash=digest,
        resource_id=file_id.group(1)[:256] if file_id else None,
    )


def normalise_endpoint(path: str) -> tuple[str, str | None]:
    """(endpoint, Azure deployment name or None). Azure's ``/openai/deployments/{d}/chat/completions``
    becomes ``/chat/completions``; its ``/openai/v1/...`` API becomes ``/v1/...``."""
    deployment = None
    match = _AZURE_DEPLOYMENT.match(path)
    if match:
        deployment, path = match.group(1), match.group(2)
    elif path.startswith("/openai/v1/"):
        path = path[len("/openai") :]
    for pattern, replacement in _ID_SEGMENTS:
        if pattern.match(path):
            path = pattern.sub(replacement, path)
            break
    return path, deployment


def _first_present(document: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if document.get(key) is not None:
            return document[key]
    return None


class OpenAIParser(BodyParser):
    """Usage of one OpenAI-dialect response, JSON or SSE."""

    # Embeddings write "model" and "usage" after the (huge) "data"; completions write them first.
    salvage_tail_keys = ("usage", "model", "service_tier")
    salvage_head_keys = ("id",)

    def on_json(self, document: Any) -> None:
        if not isinstance(document, dict):
            self._count_error("a body that is not a JSON object")
            return
        self._read_object(document)
        self.usage.complete = True

    def on_error_body(self, document: Any) -> None:
        # OpenAI error bodies carry no request id (it is only in the x-request-id header).
        if isinstance(document, dict):
            error = document.get("error")
            if isinstance(error, dict):
                logger.debug(
                    "%s error response: %s", self.info.provider, error.get("type") or error.get("code")
                )

    def on_event(self, event: SseEvent) -> None:
        if event.data.strip() == "[DONE]":
            self.usage.complete = True
            return
        data = self.event_object(event)
        if data is None:
            return
        kind = data.get("type")
        if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
            self._read_responses_event(kind, data)
            return
        # A Chat Completions (or legacy Completions) chunk.
        self._read_object(data)
        if isinstance(data.get("usage"), dict) and data.get("choices") == []:
            self.usage.complete = True  # the include_usage chunk is the last one before [DONE]

    def _read_responses_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "error":
            logger.info("%s stream reported an error: %s", self.info.provider, data.get("message"))
            return
        if kind in _RESPONSE_EVENTS_WITH_BODY:
            response = data.get("response")
            if isinstance(response, dict):
                self._read_object(response)
        if kind in _RESPONSE_CLOSING_EVENTS:
            self.usage.complete = True

    def _read_object(self, document: dict[str, Any]) -> None:
        usage = self.usage
        usage.provider_request_id = text(document.get("id")) or usage.provider_request_id
        usage.model_served = text(document.get("model")) or usage.model_served
        usage.service_tier = text(document.get("service_tier"), 64) or usage.service_tier
        wire_usage = document.get("usage")
        if isinstance(wire_usage, dict):
            self.read_usage(wire_usage)

    def read_usage(self, wire: dict[str, Any]) -> None:
        """Map one usage object (Chat Completions or Responses shape) onto ``self.usage``."""
        if "prompt_tokens" in wire or "completion_tokens" in wire:
            prompt = count(wire.get("prompt_tokens"))
            completion = count(wire.get("completion_tokens"))
            input_details = wire.get("prompt_tokens_details")
            output_details = wire.get("completion_tokens_details")
        else:
            prompt = count(wire.get("input_tokens"))
            completion = count(wire.get("output_tokens"))
            input_details = wire.get("input_tokens_details")
            output_details = wire.get("output_tokens_details")
        input_details = input_details if isinstance(input_details, dict) else {}
        output_details = output_details if isinstance(output_details, dict) else {}
        reasoning = count(output_details.get("reasoning_tokens"))
        if completion is None and prompt is not None and self.info.endpoint.endswith("/embeddings"):
            completion = 0  # an embedding generates nothing
        output, reasoning = self.output_with_reasoning(
            completion, reasoning, prompt, count(wire.get("total_tokens"))
        )
        usage = self.usage
        if prompt is not None:
            # A detail OpenAI did not send stays unknown (None): it has no 1-hour cache writes to report.
            usage.input_tokens = prompt
            usage.cache_read_tokens = count(input_details.get("cached_tokens"))
            usage.cache_write_tokens = count(input_details.get("cache_write_tokens"))
        if output is not None:
            usage.output_tokens = output
            usage.reasoning_tokens = reasoning if reasoning is not None else usage.reasoning_tokens

    def output_with_reasoning(
        self, completion: int | None, reasoning: int | None, prompt: int | None, total: int | None
    ) -> tuple[int | None, int | None]:
        """(output tokens, reasoning tokens) in our convention; OpenAI already counts reasoning in."""
        return completion, reasoning
