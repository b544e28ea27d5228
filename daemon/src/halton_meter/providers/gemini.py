"""Google Gemini API (``generativelanguage.googleapis.com``, and Vertex AI paths when mapped).

Wire facts this module normalises:

- The model is in the path: ``/v1beta/models/gemini-2.5-pro:streamGenerateContent``. The endpoint is
  recorded as ``/v1beta/models/{model}:streamGenerateContent`` and the model as requested.
- ``streamGenerateContent`` streams SSE with ``?alt=sse``, otherwise one JSON array whose elements
  arrive one by one; both are read incrementally.
- ``usageMetadata.promptTokenCount`` INCLUDES ``cachedContentTokenCount``; ``thoughtsTokenCount`` is
  SEPARATE from ``candidatesTokenCount``, so our output = candidates + thoughts and reasoning =
  thoughts. ``toolUsePromptTokenCount`` (tool results fed back to the model, e.g. search grounding) is
  input the model read on top of the prompt, so it is added to our input.
- A count Gemini did not send stays ``None`` (unknown), never 0: a model that does not think sends no
  ``thoughtsTokenCount`` (reasoning unknown), a call without a cache no ``cachedContentTokenCount``. The
  output is candidates + thoughts when either is sent, else ``totalTokenCount`` less the input (a blocked
  prompt generates nothing and says so only through the total), else unknown. Gemini reports no cache
  writes: those stay ``None``.
- Each streamed chunk carries ``usageMetadata`` with running totals: the last one wins.
- ``responseId`` is the request id, ``modelVersion`` the model served.
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

_MODEL_METHOD = re.compile(
    r"^(?P<version>/v[0-9a-z]+)/"
    r"(?P<scope>(?:projects/[^/]+/locations/[^/]+/publishers/[^/]+/)?(?:models|tunedModels))/"
    r"(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_VERTEX_SCOPE = re.compile(r"^projects/[^/]+/locations/[^/]+/publishers/([^/]+)/")
_BATCH_METHODS = frozenset({"batchGenerateContent", "asyncBatchEmbedContent"})
_FREE_METHODS = frozenset({"countTokens"})
_BATCH_OPERATION = re.compile(r"^(/v[0-9a-z]+/batches)/[^/:]+(:cancel)?$")


def request_info(method: str, path: str, query: dict[str, str], body: bytes) -> RequestInfo:
    """What a Gemini request says about itself; the query string is already split off."""
    endpoint = path
    model = None
    api_method = None
    match = _MODEL_METHOD.match(path)
    if match:
        model = match.group("model")[:256]
        api_method = match.group("method")
        scope = _VERTEX_SCOPE.sub(
            r"projects/{project}/locations/{location}/publishers/\1/", match.group("scope")
        )
        endpoint = f"{match.group('version')}/{scope}/{{model}}:{api_method}"
    else:
        batch_match = _BATCH_OPERATION.match(path)
        if batch_match:
            endpoint = batch_match.group(1) + "/{batch_id}" + (batch_match.group(2) or "")
    batch = api_method in _BATCH_METHODS or bool(_BATCH_OPERATION.match(path))
    streamed = api_method == "streamGenerateContent" or query.get("alt") == "sse"
    document = json_object(body)
    digest = None
    if document and api_method in ("generateContent", "streamGenerateContent"):
        digest = prompt_hash(
            {
                "model": model,
                "system": _either(document, "systemInstruction", "system_instruction"),
                "messages": document.get("contents"),
                "tools": document.get("tools"),
                "cached_content": _either(document, "cachedContent", "cached_content"),
            }
        )
    return RequestInfo(
        provider="gemini",
        endpoint=endpoint,
        model_requested=model,
        streamed=streamed,
        batch=batch,
        service_tier=None,
        prompt_hash=digest,
    )


def _either(document: dict[str, Any], camel: str, snake: str) -> Any:
    # The REST API accepts both spellings of a field; SDKs differ in which they send.
    value = document.get(camel)
    return value if value is not None else document.get(snake)


class GeminiParser(BodyParser):
    """Usage of one generateContent / streamGenerateContent response."""

    salvage_tail_keys = ("usageMetadata", "modelVersion", "responseId")
    salvage_head_keys = ()

    def on_json(self, document: Any) -> None:
        if isinstance(document, list):
            # A whole streamed array delivered as one document (a buffered body): read each chunk.
            for element in document:
                self.on_json(element)
            self.usage.complete = self.usage.complete or bool(document)
            return
        if not isinstance(document, dict):
            self._count_error("a body that is not a JSON object")
            return
        if self.info.endpoint.endswith(":countTokens"):
            # Counting tokens is free: nothing was consumed.
            self.usage.input_tokens = 0
            self.usage.output_tokens = 0
            self.usage.complete = True
            return
        self._read_chunk(document)
        if self._object is not None:
            self.usage.complete = True  # a whole non-streamed body was parsed

    def on_event(self, event: SseEvent) -> None:
        data = self.event_object(event)
        if data is not None:
            self._read_chunk(data)

    def _read_chunk(self, chunk: dict[str, Any]) -> None:
        usage = self.usage
        if "error" in chunk and isinstance(chunk["error"], dict):
            logger.info("gemini stream reported an error: %s", chunk["error"].get("status"))
            return
        usage.provider_request_id = text(chunk.get("responseId")) or usage.provider_request_id
        usage.model_served = text(chunk.get("modelVersion")) or usage.model_served
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            self._read_usage_metadata(meta)
        if _is_last_chunk(chunk):
            usage.complete = True

    def _read_usage_metadata(self, meta: dict[str, Any]) -> None:
        prompt = count(meta.get("promptTokenCount"))
        if prompt is None:
            return  # nothing to anchor the counts on; a later chunk will carry them
        tool_prompt = count(meta.get("toolUsePromptTokenCount"))
        thoughts = count(meta.get("thoughtsTokenCount"))
        candidates = count(meta.get("candidatesTokenCount"))
        cached = count(meta.get("cachedContentTokenCount"))
        total = count(meta.get("totalTokenCount"))
        usage = self.usage
        usage.input_tokens = prompt + (tool_prompt or 0)
        usage.cache_read_tokens = min(cached, prompt) if cached is not None else None
        if candidates is not None or thoughts is not None:
            usage.output_tokens = (candidates or 0) + (thoughts or 0)
        elif total is not None:
            # Nothing generated is said by omission: the total then tells (a blocked prompt: prompt only).
            usage.output_tokens = max(total - usage.input_tokens, 0)
        usage.reasoning_tokens = thoughts


def _is_last_chunk(chunk: dict[str, Any]) -> bool:
    candidates = chunk.get("candidates")
    if isinstance(candidates, list):
        for candidate in candidates:
            if isinstance(candidate, dict) and candidate.get("finishReason"):
                return True
    feedback = chunk.get("promptFeedback")
    # A blocked prompt gets one chunk with a blockReason and no candidates: that is the end.
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))
