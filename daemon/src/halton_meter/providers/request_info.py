"""Pieces every provider uses to read a request: its JSON body and its prompt hash.

The prompt hash lets identical calls cluster (repeated prompts are caching and deduplication
opportunities). It is a sha256 over a canonical JSON form (keys sorted, no insignificant
whitespace) of only what makes up the prompt:

- kept: the model, the system prompt, the conversation (``messages`` / ``input`` / ``contents`` /
  ``prompt``), the tool definitions, and references to server-held context
  (``previous_response_id``, Gemini ``cachedContent``), because each of those changes what the
  model is asked;
- dropped: sampling knobs (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``...), since
  the same prompt asked with another temperature is still the same prompt for caching and
  deduplication; transport and bookkeeping fields (``stream``, ``stream_options``, ``user``,
  ``metadata``, ``store``, ``service_tier``, ``prompt_cache_key``) that vary per call without changing
  the prompt; and Anthropic ``cache_control`` markers, which agents move between turns while the
  prompt text stays the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_object(body: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is empty, not JSON, or not an object."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def prompt_hash(parts: dict[str, Any]) -> str | None:
    """sha256 hex of the canonical form of ``parts`` (None values dropped); None when nothing is left."""
    kept = {key: _without_cache_control(value) for key, value in parts.items() if value is not None}
    if not any(key != "model" for key in kept):
        return None  # no prompt to speak of (a body with only a model, or none at all)
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value
