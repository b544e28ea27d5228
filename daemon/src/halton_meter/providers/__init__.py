"""Provider detection, request reading and streaming-safe response parsers.

Capture uses three calls, none of which ever raises:

- ``identify(host, extra_hosts)`` -> the provider for an API host, or None (not metered);
- ``read_request(provider, method, path, headers, body)`` -> :class:`RequestInfo`;
- ``parser_for(info, status_code, content_type)`` -> a :class:`ResponseParser` to ``feed`` each body
  chunk to as it passes and ``finish`` at the end.

One module per provider holds its wire facts: :mod:`.anthropic`, :mod:`.openai` (also the dialect
of :mod:`.xai`), :mod:`.gemini`; :mod:`.sse` decodes event streams; :mod:`.batch_results` reads batch
results downloads, one result per batched request.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from halton_meter.providers import anthropic, batch_results, gemini, openai, xai
from halton_meter.providers.response_parser import BodyParser
from halton_meter.usage import RequestInfo, ResponseParser

logger = logging.getLogger(__name__)

DEFAULT_HOSTS: dict[str, str] = {
    "anthropic": "api.anthropic.com",
    "openai": "api.openai.com",
    "gemini": "generativelanguage.googleapis.com",
    "xai": "api.x.ai",
}
PROVIDERS = frozenset(DEFAULT_HOSTS)

_HOST_TO_PROVIDER = {host: provider for provider, host in DEFAULT_HOSTS.items()}
_MAX_ENDPOINT = 512
_MAX_REQUEST_BODY = 32 * 1024 * 1024  # larger request bodies are not hashed or read (uploads)

_PARSERS: dict[str, type[BodyParser]] = {
    "anthropic": anthropic.AnthropicParser,
    "openai": openai.OpenAIParser,
    "xai": xai.XaiParser,
    "gemini": gemini.GeminiParser,
}


def identify(host: str, extra_hosts: Mapping[str, str] | None = None) -> str | None:
    """The provider behind ``host`` (port and case ignored), or None when it is not an LLM API.

    ``extra_hosts`` maps more host names to a provider, e.g. an Azure OpenAI resource
    (``"myco.openai.azure.com": "openai"``) or a company gateway; a key ``"*.example.com"`` matches
    every subdomain of example.com. Entries naming an unknown provider are ignored.
    """
    name = _normalise_host(host)
    if not name:
        return None
    for pattern, provider in (extra_hosts or {}).items():
        if provider in PROVIDERS and _host_matches(name, _normalise_host(pattern)):
            return provider
    return _HOST_TO_PROVIDER.get(name)


def read_request(
    provider: str, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> RequestInfo:
    """What the request says about itself: endpoint, model, streaming, tier, batch, prompt hash.

    Never raises: an unknown endpoint or a body that is not JSON gives a RequestInfo with what the
    path alone tells.
    """
    endpoint = "/"
    try:
        endpoint, query = _split_path(path)
        body = _decoded_body(headers, body)
        if provider == "anthropic":
            info = anthropic.request_info(method, endpoint, body)
        elif provider == "openai":
            info = openai.request_info(method, endpoint, body)
        elif provider == "xai":
            info = xai.request_info(method, endpoint, body)
        elif provider == "gemini":
            info = gemini.request_info(method, endpoint, query, body)
        else:
            info = RequestInfo(provider=provider, endpoint=endpoint, model_requested=None, streamed=False)
    except Exception:  # fail open: the call is still metered, with less detail
        logger.warning("could not read a %s request to %s", provider, endpoint, exc_info=True)
        info = RequestInfo(provider=provider, endpoint=endpoint or "/", model_requested=None, streamed=False)
    if len(info.endpoint) > _MAX_ENDPOINT or not info.endpoint:
        info = replace(info, endpoint=(info.endpoint or "/")[:_MAX_ENDPOINT])
    return info


def parser_for(info: RequestInfo, status_code: int, content_type: str | None) -> ResponseParser:
    """A fresh parser for one response body. It never raises and never changes the bytes."""
    parser_class = _PARSERS.get(info.provider, BodyParser)
    try:
        if batch_results.carries_results(info, status_code):
            return batch_results.BatchResultsParser(info)
        return parser_class(info, status_code, content_type)
    except Exception:  # fail open: a parser that reads nothing still lets the call be recorded
        logger.warning("could not build a %s parser", info.provider, exc_info=True)
        return BodyParser(info, status_code, content_type)


def _normalise_host(host: str) -> str:
    name = (host or "").strip().lower().rstrip(".")
    if name.startswith("["):  # an IPv6 literal: [::1]:8080
        return name.split("]", 1)[0] + "]"
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def _host_matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


def _split_path(path: str) -> tuple[str, dict[str, str]]:
    # Capture may hand over an absolute URL (a proxy request line) or a path with a query string.
    # The query string is dropped from the endpoint: it can hold an API key (Gemini's ?key=).
    parts = urlsplit(path)
    endpoint = parts.path or "/"
    if not endpoint.startswith("/"):
        endpoint = "/" + endpoint
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return endpoint, query


def _decoded_body(headers: Mapping[str, str], body: bytes) -> bytes:
    if not body or len(body) > _MAX_REQUEST_BODY:
        return b""
    encoding = ""
    for key, value in headers.items():
        if key.lower() == "content-encoding":
            encoding = value.strip().lower()
            break
    if encoding in ("gzip", "deflate"):
        try:
            return zlib.decompress(body, wbits=47)  # auto-detects gzip and zlib framing
        except zlib.error:
            logger.debug("request body says %s but does not inflate", encoding)
            return b""
    return body
