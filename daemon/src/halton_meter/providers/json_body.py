"""Reading JSON out of response bodies that arrive in chunks, with bounded memory.

Three shapes reach the parsers:

- one JSON object (a non-streamed response): buffered until the body ends, because such bodies are
  small. An embeddings response can still run to tens of MiB, so past ``MAX_JSON_BODY_BYTES`` only
  the head and the tail are kept and the few top-level fields a parser needs are salvaged from them
  (usage sits at the end of OpenAI bodies, ids and models at the start).
- a JSON array streamed element by element (Gemini ``streamGenerateContent`` without ``alt=sse``):
  split incrementally; only the element in progress is kept.
- SSE, handled by :mod:`halton_meter.providers.sse`.

Bodies compressed with gzip or zlib (when the capture passes the wire bytes undecoded) are
detected by their magic bytes and inflated on the fly.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

MAX_JSON_BODY_BYTES = 8 * 1024 * 1024
SALVAGE_HEAD_BYTES = 64 * 1024
SALVAGE_TAIL_BYTES = 256 * 1024
MAX_ARRAY_ELEMENT_BYTES = 16 * 1024 * 1024


def count(value: Any) -> int | None:
    """A token count from JSON: a non-negative integer, else None (unknown), never a guess."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def text(value: Any, limit: int = 256) -> str | None:
    """A short identifier (model name, request id) from JSON, or None when it is not a string."""
    if isinstance(value, str) and value:
        return value[:limit]
    return None


class Inflater:
    """Passes plain bytes through; inflates a gzip or zlib body detected by its first bytes."""

    def __init__(self) -> None:
        self._decided = False
        self._pending = b""
        self._decompressor: Any = None

    def feed(self, chunk: bytes) -> bytes:
        if self._decided:
            return self._decompressor.decompress(chunk) if self._decompressor else chunk
        data = self._pending + chunk
        if len(data) < 2:
            self._pending = data
            return b""
        self._decided = True
        self._pending = b""
        if data[:2] == b"\x1f\x8b" or (data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0):
            # 1f8b is gzip; 78xx with a valid zlib header check is deflate. Neither can start JSON or SSE.
            self._decompressor = zlib.decompressobj(wbits=47)  # 32 + 15: auto-detect gzip or zlib
            return self._decompressor.decompress(data)
        return data

    def finish(self) -> bytes:
        if not self._decided:
            self._decided = True
            data, self._pending = self._pending, b""
            return data
        return self._decompressor.flush() if self._decompressor else b""


class JsonObjectBuffer:
    """Collects a non-streamed JSON body; keeps only its head and tail once it grows too large."""

    def __init__(self, max_bytes: int = MAX_JSON_BODY_BYTES) -> None:
        self._max_bytes = max_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._head = b""
        self._tail = bytearray()
        self.overflowed = False

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if not self.overflowed:
            self._parts.append(chunk)
            if self._size > self._max_bytes:
                whole = b"".join(self._parts)
                self._parts = []
                self._head = whole[:SALVAGE_HEAD_BYTES]
                self._tail = bytearray(whole[-SALVAGE_TAIL_BYTES:])
                self.overflowed = True
            return
        self._tail += chunk
        if len(self._tail) > 2 * SALVAGE_TAIL_BYTES:
            del self._tail[:-SALVAGE_TAIL_BYTES]

    @property
    def empty(self) -> bool:
        return self._size == 0

    def parse(self) -> Any:
        """The decoded body. Raises ValueError when it is not JSON (the caller counts the error)."""
        return json.loads(b"".join(self._parts))

    def salvage(self, tail_keys: Iterable[str], head_keys: Iterable[str] = ()) -> dict[str, Any]:
        """Top-level-looking fields of an oversized body: ``tail_keys`` from the last occurrence in its
        tail (else the head), ``head_keys`` from the first occurrence in its head (else the tail)."""
        tail = bytes(self._tail[-SALVAGE_TAIL_BYTES:]).decode("utf-8", errors="replace")
        head = self._head.decode("utf-8", errors="replace")
        found: dict[str, Any] = {}
        for key in head_keys:
            value = _first_value(head, key)
            if value is _MISSING:
                value = _last_value(tail, key)
            if value is not _MISSING:
                found[key] = value
        for key in tail_keys:
            value = _last_value(tail, key)
            if value is _MISSING:
                value = _first_value(head, key)
            if value is not _MISSING:
                found[key] = value
        return found


_MISSING = object()
_DECODER = json.JSONDecoder()


def _value_positions(text_: str, key: str) -> list[int]:
    pattern = re.compile(r'"' + re.escape(key) + r'"\s*:\s*')
    return [m.end() for m in pattern.finditer(text_)]


def _decode_at(text_: str, pos: int) -> Any:
    try:
        return _DECODER.raw_decode(text_, pos)[0]
    except ValueError:
        return _MISSING


def _last_value(text_: str, key: str) -> Any:
    for pos in reversed(_value_positions(text_, key)):
        value = _decode_at(text_, pos)
        if value is not _MISSING:
            return value
    return _MISSING


def _first_value(text_: str, key: str) -> Any:
    for pos in _value_positions(text_, key):
        value = _decode_at(text_, pos)
        if value is not _MISSING:
            return value
    return _MISSING


_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')
_STRING_SPECIAL = re.compile(rb'["\\]')


class JsonArrayStream:
    """Splits a streamed top-level JSON array (``[{..},{..}]``) into its elements as they complete.

    ``feed`` returns the raw bytes of each element that closed in the chunk; the caller decodes
    them. Only the element in progress is buffered.
    """

    def __init__(self, max_element_bytes: int = MAX_ARRAY_ELEMENT_BYTES) -> None:
        self._max_element_bytes = max_element_bytes
        self._depth = 0  # 1 inside the top-level array, 2+ inside an element
        self._in_string = False
        self._escaped = False
        self._element = bytearray()
        self._skipping = False  # the element outgrew the limit; drop it
        self.closed = False  # the closing ']' of the top-level array was seen
        self.errors = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        elements: list[bytes] = []
        if self.closed:
            return elements
        start = 0 if self._depth >= 2 else None  # where the current element begins in this chunk
        pos = 0
        while True:
            if self._in_string:
                if self._escaped:
                    if pos >= len(chunk):
                        break
                    self._escaped = False
                    pos += 1  # the escaped character, whatever it is, cannot end the string
                    continue
                match = _STRING_SPECIAL.search(chunk, pos)
                if match is None:
                    break
                pos = match.end()
                if match.group() == b"\\":
                    self._escaped = True
                else:
                    self._in_string = False
                continue
            match = _STRUCTURAL.search(chunk, pos)
            if match is None:
                break
            char = match.group()
            pos = match.end()
            if char == b'"':
                self._in_string = True
                if self._depth == 1:
                    self.errors += 1  # a bare string element: not something a provider sends
            elif char in (b"{", b"["):
                self._depth += 1
                if self._depth == 2:
                    start = match.start()
            elif char in (b"}", b"]"):
                self._depth -= 1
                if self._depth == 1 and start is not None:
                    self._append(chunk[start:pos])
                    if not self._skipping:
                        elements.append(bytes(self._element))
                    self._element.clear()
                    self._skipping = False
                    start = None
                elif self._depth == 0:
                    self.closed = True
                    break
                elif self._depth < 0:
                    self.errors += 1
                    self.closed = True
                    break
        if start is not None and self._depth >= 2:
            self._append(chunk[start:])
        return elements

    def _append(self, piece: bytes) -> None:
        if self._skipping:
            return
        self._element += piece
        if len(self._element) > self._max_element_bytes:
            logger.debug("dropped a streamed JSON element larger than %d bytes", self._max_element_bytes)
            self.errors += 1
            self._element.clear()
            self._skipping = True
