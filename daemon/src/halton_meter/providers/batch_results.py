"""Batch results downloads: one row per request a batch ran, read line by line from the JSONL body.

Two downloads carry the usage of batched calls, which the batch's own endpoints never report:

- Anthropic Message Batches: ``GET /v1/messages/batches/{id}/results`` (the batch's ``results_url``), one
  line per request: ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}``, or a result of
  type ``errored`` (with the error), ``canceled`` or ``expired``. Every line is a Messages API call.
- OpenAI Batch output and error files: ``GET /v1/files/{id}/content``, one line per request:
  ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`` (``response`` is null
  and ``error`` set for a request that never ran). Any file can be downloaded there, so a body counts as a
  batch output only if EVERY line has that shape: at the first line that does not, it is an ordinary file,
  reading stops and nothing is recorded beyond the download itself (no parse error either).

Each request gets a DETERMINISTIC request_uid, a uuid5 of provider, batch or file id and custom_id, so
downloading the same results again records nothing new. A request that did not succeed is a row with its
status and no tokens (the provider bills nothing for it): an errored Anthropic result takes the HTTP
status of its error type, a canceled one :data:`CANCELED_STATUS` and an expired one
:data:`EXPIRED_STATUS` (neither has an HTTP status of its own; nginx's 499 "client closed request" and 408
"request timeout" are the nearest). The body can be tens of MB: only the line in progress is kept, and a
line that does not parse is counted and skipped, never raised.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from halton_meter.providers.anthropic import AnthropicParser
from halton_meter.providers.json_body import Inflater, text
from halton_meter.providers.openai import OpenAIParser
from halton_meter.usage import RequestInfo, Usage

logger = logging.getLogger(__name__)

ANTHROPIC_RESULTS = "/v1/messages/batches/{batch_id}/results"
OPENAI_FILE_CONTENT = "/v1/files/{file_id}/content"
MAX_LINE_BYTES = 16 * 1024 * 1024  # one result: a whole Message, long outputs included
CANCELED_STATUS = 499
EXPIRED_STATUS = 408
# request_uid = uuid5(NAMESPACE, "provider/batch-or-file-id/custom_id"); never change it, or a second
# download of old results would record them again.
NAMESPACE = uuid.UUID("5f1d7c1e-8a63-4d0b-9a58-2b1f3c7e9d40")

# Anthropic error types and the HTTP status the Messages API answers them with.
_ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# What an OpenAI result body is, by its "object", tells the endpoint it was batched for.
_OPENAI_ENDPOINTS = {
    "chat.completion": "/v1/chat/completions",
    "response": "/v1/responses",
    "text_completion": "/v1/completions",
    "list": "/v1/embeddings",
}
_OPENAI_UNRUN_STATUS = {"batch_expired": EXPIRED_STATUS, "batch_cancelled": CANCELED_STATUS}


@dataclass
class BatchResult:
    """One request of a batch, as its results line tells it; becomes a row of its own."""

    request_uid: uuid.UUID
    endpoint: str  # the batched endpoint, e.g. /v1/messages
    status_code: int
    usage: Usage
    error: str | None = None


def result_uid(provider: str, resource_id: str, custom_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{provider}/{resource_id}/{custom_id}")


def download_uid(provider: str, resource_id: str) -> uuid.UUID:
    """The row of a download that yielded results: one per batch or file, however often it is downloaded."""
    return uuid.uuid5(NAMESPACE, f"{provider}/{resource_id}")


def carries_results(info: RequestInfo, status_code: int) -> bool:
    """Whether this response may be a batch results body (read by :class:`BatchResultsParser`)."""
    if status_code != 200 or not info.resource_id:
        return False
    if info.provider == "anthropic":
        return info.endpoint == ANTHROPIC_RESULTS
    return info.provider == "openai" and info.endpoint == OPENAI_FILE_CONTENT


@dataclass
class BatchResultsParser:
    """A :class:`~halton_meter.usage.ResponseParser` for a results download: ``results`` holds a
    :class:`BatchResult` per line once ``finish`` ran. The download's own usage has no tokens."""

    info: RequestInfo
    usage: Usage = field(default_factory=Usage)
    results: list[BatchResult] = field(default_factory=list)
    _inflater: Inflater = field(default_factory=Inflater)
    _line: bytearray = field(default_factory=bytearray)
    _skipping: bool = False  # inside a line too long to keep: dropped up to its end
    _ordinary_file: bool = False  # an OpenAI file that is not a batch output: stop reading
    _finished: bool = False

    def feed(self, chunk: bytes) -> None:
        if self._finished or self._ordinary_file or not chunk:
            return
        try:
            self._split(self._inflater.feed(chunk))
        except Exception:  # fail open: the download goes on, the rest of the body is not read
            logger.debug("reading a batch results body failed", exc_info=True)
            if self.info.provider == "anthropic":
                self._error()  # an OpenAI file that does not read (a .gz someone uploaded) is just a file
            self._ordinary_file = True

    def finish(self) -> Usage:
        if self._finished:
            return self.usage
        self._finished = True
        try:
            if not self._ordinary_file:
                self._split(self._inflater.finish())
                if self._line and not self._skipping:
                    self._read_line(bytes(self._line))
            self._line.clear()
        except Exception:  # fail open
            logger.debug("finishing a batch results body failed", exc_info=True)
            self._error()
        if self._ordinary_file:
            self.results.clear()
        elif self.info.provider == "openai":
            _fill_unknown_endpoints(self.results)
        self.usage.complete = True
        return self.usage

    # -- lines ---------------------------------------------------------------------------------

    def _split(self, data: bytes) -> None:
        start = 0
        while not self._ordinary_file:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data[start:])
                return
            self._keep(data[start:end])
            if not self._skipping:
                self._read_line(bytes(self._line))
            self._line.clear()
            self._skipping = False
            start = end + 1

    def _keep(self, part: bytes) -> None:
        if self._skipping:
            return
        if len(self._line) + len(part) > MAX_LINE_BYTES:
            self._error()
            self._line.clear()
            self._skipping = True
            if self.info.provider == "openai":
                self._ordinary_file = True  # no batch output line is that long: an ordinary file
            return
        self._line += part

    def _read_line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if self.info.provider == "anthropic":
            self._read_anthropic(document)
        else:
            self._read_openai(document)

    def _error(self) -> None:
        self.usage.parse_errors += 1

    # -- Anthropic -----------------------------------------------------------------------------

    def _read_anthropic(self, line: Any) -> None:
        custom_id = text(line.get("custom_id"), 1024) if isinstance(line, dict) else None
        result = line.get("result") if isinstance(line, dict) else None
        if custom_id is None or not isinstance(result, dict):
            self._error()
            return
        kind = result.get("type")
        uid = result_uid("anthropic", self.info.resource_id or "", custom_id)
        endpoint = "/v1/messages"
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            parser = AnthropicParser(_batched(self.info, endpoint), 200, "application/json")
            parser.on_json(result["message"])
            self.results.append(BatchResult(uid, endpoint, 200, parser.finish()))
        elif kind == "errored":
            error = result.get("error")
            inner = error.get("error") if isinstance(error, dict) else None
            error_type = text(inner.get("type"), 64) if isinstance(inner, dict) else None
            status = _ANTHROPIC_ERROR_STATUS.get(error_type or "", 500)
            usage = Usage(complete=True)
            if isinstance(error, dict):
                usage.provider_request_id = text(error.get("request_id"))
            self.results.append(
                BatchResult(uid, endpoint, status, usage, f"batch result errored: {error_type}")
            )
        elif kind in ("canceled", "expired"):
            status = CANCELED_STATUS if kind == "canceled" else EXPIRED_STATUS
            self.results.append(
                BatchResult(uid, endpoint, status, Usage(complete=True), f"batch result {kind}")
            )
        else:
            self._error()

    # -- OpenAI --------------------------------------------------------------------------------

    def _read_openai(self, line: Any) -> None:
        shape = _openai_shape(line)
        if shape is None:
            # Not a batch output line: the whole file is an ordinary one, and none of it is a call.
            self._ordinary_file = True
            return
        custom_id, response, error = shape
        uid = result_uid("openai", self.info.resource_id or "", custom_id)
        if response is None:
            code = text(error.get("code"), 64) if error else None
            status = _OPENAI_UNRUN_STATUS.get(code or "", 500)
            self.results.append(
                BatchResult(uid, "", status, Usage(complete=True), f"batch request not run: {code}")
            )
            return
        body = response["body"]
        status = response.get("status_code")
        status = status if isinstance(status, int) and 100 <= status <= 999 else 200
        endpoint = _openai_endpoint(body) or ""
        if status >= 400:
            usage = Usage(complete=True, provider_request_id=text(response.get("request_id")))
            self.results.append(BatchResult(uid, endpoint, status, usage, "batch request failed"))
            return
        parser = OpenAIParser(_batched(self.info, endpoint or "/v1/batches"), status, "application/json")
        parser.on_json(body)
        self.results.append(BatchResult(uid, endpoint, status, parser.finish()))


def _batched(info: RequestInfo, endpoint: str) -> RequestInfo:
    return RequestInfo(
        provider=info.provider, endpoint=endpoint, model_requested=None, streamed=False, batch=True
    )


def _openai_shape(line: Any) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None] | None:
    """(custom_id, response, error) of a batch output line, or None when the line is not one."""
    if not isinstance(line, dict):
        return None
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None
    response, error = line.get("response"), line.get("error")
    if isinstance(response, dict) and isinstance(response.get("body"), dict):
        return custom_id[:1024], response, None
    if response is None and isinstance(error, dict):
        return custom_id[:1024], None, error
    return None


def _openai_endpoint(body: dict[str, Any]) -> str | None:
    kind = body.get("object")
    if kind == "list":
        data = body.get("data")
        first = data[0] if isinstance(data, list) and data else None
        return "/v1/embeddings" if isinstance(first, dict) and first.get("object") == "embedding" else None
    return _OPENAI_ENDPOINTS.get(kind) if isinstance(kind, str) else None


def _fill_unknown_endpoints(results: list[BatchResult]) -> None:
    # A batch runs one endpoint: a line whose body did not tell (an error, a request never run) takes the
    # endpoint the other lines show, else the batch API's own.
    known = next((r.endpoint for r in results if r.endpoint), "/v1/batches")
    for result in results:
        if not result.endpoint:
            result.endpoint = known
