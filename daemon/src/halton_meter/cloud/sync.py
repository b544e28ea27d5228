"""One sync pass: read unsynced rows, send them in batches, mark them synced only after a 2xx.

A batch is at most ``batch_rows`` rows and ``batch_bytes`` bytes of JSON (before gzip; the cloud caps
the decompressed size), oldest rows first. What each answer does:

* **2xx** - the rows get ``synced_at``; the next batch follows;
* **413** - the batch is halved and each half sent (and later batches start at the smaller size); a
  single row that is still too large is set aside;
* **422** - if the answer names rows (``errors[].row``), exactly those are set aside and the rest
  resent; otherwise the batch is bisected until the offending row(s) are alone, and set aside. A set-aside
  row carries the cloud's message in ``sync_rejected`` and never blocks the others. A 422 about the
  batch as a whole (no row named, e.g. an unsupported schema version) sets nothing aside;
* **401 / 403** - the pass stops: the worker pauses (``paused_unauthorised`` / ``paused_forbidden``);
* **no answer, 429, 5xx, anything else** - the pass stops with a transient error (and ``Retry-After``
  when given); the worker retries later. Nothing is marked, so nothing is lost.

Rows that do not even validate locally are set aside the same way, so they cannot block the queue.
"""

from __future__ import annotations

import gzip
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

from halton_meter.cloud.client import BatchResponse, CloudClient
from halton_meter.cloud.state import now_utc
from halton_meter.protocol import SCHEMA_VERSION
from halton_meter.store import count_unsynced, mark_synced, row_to_protocol, set_aside, unsynced_records

logger = logging.getLogger(__name__)

PASS_BUDGET_S = 10.0
GZIP_LEVEL = 6

UNAUTHORISED = "unauthorised"
FORBIDDEN = "forbidden"
TRANSIENT = "transient"


@dataclass(frozen=True)
class Post:
    """One ``POST /v1/requests/batch`` and its answer (what ``cloud sync`` prints)."""

    rows: int
    status: int | None
    accepted: int
    duplicates: int
    detail: str
    depth: int  # 0: a batch as read from the store; more: a half while halving (413) or bisecting (422)

    @property
    def reason(self) -> str:
        if self.status is None:
            return "no answer"
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""


@dataclass
class PassResult:
    posts: list[Post] = field(default_factory=list)
    synced: int = 0
    accepted: int = 0
    duplicates: int = 0
    set_aside: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None  # None, UNAUTHORISED, FORBIDDEN, TRANSIENT
    error: str | None = None
    retry_after: float | None = None
    remaining: int = 0

    @property
    def uploaded(self) -> bool:
        return any(p.status is not None and 200 <= p.status < 300 for p in self.posts)


@dataclass
class _Item:
    uid: str
    encoded: bytes


class Uploader:
    """Runs passes for one token against one cloud, on one SQLite connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        client: CloudClient,
        token: str,
        *,
        batch_rows: int,
        batch_bytes: int,
        on_post: Callable[[Post], None] | None = None,
    ) -> None:
        self.conn = conn
        self.client = client
        self.token = token
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.on_post = on_post

    def run_pass(
        self,
        *,
        budget_s: float = PASS_BUDGET_S,
        max_batches: int | None = None,
        keep_going: Callable[[], bool] | None = None,
    ) -> PassResult:
        """Send batches until nothing is left, the budget runs out, or ``keep_going()`` says stop
        (checked before each batch, so ``cloud pause`` takes effect before the next one)."""
        result = PassResult()
        deadline = time.monotonic() + budget_s
        batches = 0
        while time.monotonic() < deadline and (max_batches is None or batches < max_batches):
            if keep_going is not None and not keep_going():
                break
            items = self._next_batch(result)
            if not items:
                break
            before = (result.synced, len(result.set_aside))
            batches += 1
            if self._send(items, 0, result) is not None:
                break
            if (result.synced, len(result.set_aside)) == before:
                break  # no progress (the rows changed under us): let the next pass look again
        result.remaining = count_unsynced(self.conn)
        return result

    # -- batches -------------------------------------------------------------------------------

    def _next_batch(self, result: PassResult) -> list[_Item]:
        while True:
            records = unsynced_records(self.conn, limit=self.batch_rows)
            items: list[_Item] = []
            invalid: list[tuple[str, str]] = []
            size = 0
            for record in records:
                try:
                    encoded = row_to_protocol(record).model_dump_json().encode()
                except (ValidationError, ValueError, TypeError) as exc:
                    invalid.append((record["request_uid"], f"invalid locally, not sent: {_first_error(exc)}"))
                    continue
                if items and size + len(encoded) + 1 > self.batch_bytes:
                    break
                items.append(_Item(record["request_uid"], encoded))
                size += len(encoded) + 1
            if invalid:
                logger.warning("set aside %d row(s) that do not validate locally", len(invalid))
                set_aside(self.conn, invalid)
                result.set_aside.extend(invalid)
                if not items:
                    continue  # the whole read was invalid: read again past them
            return items

    def _body(self, items: list[_Item]) -> bytes:
        head = f'{{"schema_version":{SCHEMA_VERSION},"batch_id":"{uuid.uuid4()}","rows":['.encode()
        return gzip.compress(head + b",".join(i.encoded for i in items) + b"]}", GZIP_LEVEL)

    def _send(self, items: list[_Item], depth: int, result: PassResult) -> str | None:
        """Send ``items``; returns why the pass must stop, or None to carry on."""
        response = self.client.post_batch(self.token, self._body(items))
        document = response.document or {}
        post = Post(
            rows=len(items),
            status=response.status,
            accepted=_int(document.get("accepted")) if response.ok else 0,
            duplicates=_int(document.get("duplicates")) if response.ok else 0,
            detail=response.detail,
            depth=depth,
        )
        result.posts.append(post)
        if self.on_post is not None:
            self.on_post(post)
        status = response.status
        if response.ok:
            mark_synced(self.conn, [i.uid for i in items], now_utc())
            result.synced += len(items)
            result.accepted += post.accepted
            result.duplicates += post.duplicates
            return None
        if status == 401:
            return self._stop(result, UNAUTHORISED, response)
        if status == 403:
            return self._stop(result, FORBIDDEN, response)
        if status == 413:
            return self._too_large(items, depth, result, response)
        if status == 422:
            return self._unprocessable(items, depth, result, response)
        return self._stop(result, TRANSIENT, response)

    def _stop(self, result: PassResult, why: str, response: BatchResponse) -> str:
        result.stopped = why
        result.retry_after = response.retry_after
        where = f"HTTP {response.status}" if response.status is not None else "transport error"
        result.error = response.detail if response.status is None else f"{where}: {response.detail}"
        return why

    def _too_large(
        self, items: list[_Item], depth: int, result: PassResult, response: BatchResponse
    ) -> str | None:
        if len(items) == 1:
            self._reject(result, [(items[0].uid, f"HTTP 413 for this row alone: {response.detail}")])
            return None
        half = len(items) // 2
        self.batch_rows = max(1, min(self.batch_rows, half))
        logger.info("HTTP 413 for %d rows; halving to %d", len(items), half)
        return self._send(items[:half], depth + 1, result) or self._send(items[half:], depth + 1, result)

    def _unprocessable(
        self, items: list[_Item], depth: int, result: PassResult, response: BatchResponse
    ) -> str | None:
        errors = (response.document or {}).get("errors")
        named: dict[int, str] = {}
        if isinstance(errors, list):
            for error in errors:
                if (
                    isinstance(error, dict)
                    and isinstance(error.get("row"), int)
                    and 0 <= error["row"] < len(items)
                ):
                    field_name = f"{error['field']}: " if error.get("field") else ""
                    named.setdefault(
                        error["row"], f"HTTP 422: {field_name}{error.get('message') or response.detail}"
                    )
            if not named and errors:
                # The cloud refuses the batch as a whole (schema version...): setting rows aside would
                # hide a meter/cloud mismatch, so stop and show the message instead.
                return self._stop(result, TRANSIENT, response)
        if named:
            self._reject(result, [(items[i].uid, reason) for i, reason in sorted(named.items())])
            rest = [item for i, item in enumerate(items) if i not in named]
            return self._send(rest, depth + 1, result) if rest else None
        if len(items) == 1:
            self._reject(result, [(items[0].uid, f"HTTP 422: {response.detail}")])
            return None
        half = len(items) // 2
        return self._send(items[:half], depth + 1, result) or self._send(items[half:], depth + 1, result)

    def _reject(self, result: PassResult, rejected: list[tuple[str, str]]) -> None:
        logger.warning("the cloud refused %d row(s); set aside: %s", len(rejected), rejected[0][1])
        set_aside(self.conn, rejected)
        result.set_aside.extend(rejected)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)
