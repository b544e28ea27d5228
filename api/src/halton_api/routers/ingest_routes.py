"""`POST /v1/requests/batch`: a meter's rows into `raw.requests`, all of them or none.

The whole batch is read, decompressed and validated before the one INSERT, so a rejected batch leaves
nothing behind: every value inside its column's range (`halton_meter.protocol`), every time inside the
ingestion window (`halton_api.ingest_window`), no request_uid twice with different content, and no more new
projects than the device's hourly quota (registered before the INSERT, so a batch over it stores nothing).

Rows the workspace already has (same request_uid, started within the batch's span) are counted as duplicates
and not written again, whichever API process wrote them: the device's mark in PostgreSQL says how far its rows
are stored (`WarehouseWriter.write_batch`). Copies of one batch sent at the same time may both be written,
which the ReplacingMergeTree key and the deduplicated read path absorb.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from pydantic_core import from_json

from halton_api.batch_decoding import FIELD, WireBatch, WireRow, decode_batch, from_model
from halton_api.deps import ActiveDevice, Pool, Settings, Writer
from halton_api.ingest_window import IngestWindow
from halton_api.models import Problem
from halton_api.store import devices, projects
from halton_api.store.devices import DeviceAuth
from halton_meter.protocol import SCHEMA_VERSION, BatchAccepted, RequestBatch

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/requests", tags=["ingestion"])

MAX_REPORTED_ERRORS = 20


class BatchRejected(HTTPException):
    """A batch we will not store, with what is wrong and where (row index, field)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status_code, detail={"detail": detail, "errors": errors} if errors else detail, headers=headers
        )


@router.post(
    "/batch",
    response_model=BatchAccepted,
    summary="Ingest a batch of metered requests",
    responses={
        400: {"model": Problem, "description": "The body is not JSON, or not valid gzip."},
        401: {"model": Problem, "description": "Unknown or revoked sync token."},
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
        413: {
            "model": Problem,
            "description": "Too many bytes or rows, or more new projects than a device may register in an hour.",
        },
        415: {"model": Problem, "description": "Unsupported Content-Encoding."},
        422: {
            "model": Problem,
            "description": "A row or field is invalid (out of range, outside the ingestion window, a request_uid "
            "twice with different content): `errors` names row and field.",
        },
        429: {
            "model": Problem,
            "description": "Too many bad tokens, the device's hourly quota of new projects is used up, or the "
            "warehouse is busy (Retry-After).",
        },
        503: {"model": Problem, "description": "A store is unavailable (Retry-After)."},
    },
)
async def ingest_batch(
    request: Request, device: ActiveDevice, pool: Pool, settings: Settings, writer: Writer
) -> BatchAccepted:
    body = await read_body(request, settings.max_batch_bytes)
    state = request.app.state
    batch = parse_batch(
        body, max_rows=settings.max_batch_rows, machine_id=device.machine_id, window=state.ingest_window
    )
    rows = one_row_per_uid(batch.rows)
    await _register_projects(
        pool,
        device,
        set(map(FIELD["project"], rows)),
        known=state.known_projects,
        per_hour=settings.device_new_projects_per_hour,
    )
    fresh = await writer.write_batch(
        workspace_id=device.workspace.id,
        device_id=device.device_id,
        batch_id=batch.batch_id,
        rows=rows,
        written_through=device.written_through,
    )
    await _record_sync(pool, device, clock=state.sync_clock)
    return BatchAccepted(
        batch_id=batch.batch_id, accepted=len(fresh), duplicates=len(batch.rows) - len(fresh)
    )


async def _register_projects(
    pool: AsyncConnectionPool,
    device: DeviceAuth,
    slugs: set[str],
    *,
    known: projects.KnownProjects,
    per_hour: int,
) -> None:
    """Projects for the batch's slugs the workspace does not have, within the device's hourly quota.

    Before the INSERT, so a batch over the quota stores nothing (a batch whose INSERT then fails leaves its
    new projects registered, empty until the meter's retry). `known` is the app's (one per process, see
    `create_app`): which projects PostgreSQL already has, so that most batches need no transaction here.
    """
    workspace_id = device.workspace.id
    new_slugs = known.unknown(workspace_id, slugs)
    if not new_slugs:
        return
    try:
        async with pool.connection() as conn:
            await projects.register_device_projects(
                conn,
                workspace_id=workspace_id,
                device_id=device.device_id,
                slugs=new_slugs,
                actor=device.actor,
                per_hour=per_hour,
            )
    except projects.ProjectQuotaExceeded as over:
        raise _over_project_quota(over) from None
    known.remember(workspace_id, new_slugs)  # only now, committed: a rolled-back write is tried again


def _over_project_quota(over: projects.ProjectQuotaExceeded) -> BatchRejected:
    limit = f"a device may register at most {over.per_hour} new projects per hour"
    if over.retry_after is None:  # waiting cannot help: the meter halves a batch answered 413
        return BatchRejected(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the batch holds {over.new} projects this workspace does not have, and {limit}: send fewer rows "
            "per batch; nothing from this batch was stored",
        )
    return BatchRejected(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"the batch holds {over.new} new project(s) and this device registered {over.recent} in the last hour; "
        f"{limit}: retry in {over.retry_after} s; nothing from this batch was stored",
        headers={"Retry-After": str(over.retry_after)},
    )


async def _record_sync(pool: AsyncConnectionPool, device: DeviceAuth, *, clock: devices.SyncClock) -> None:
    """The device's last-sync time, at most every few seconds (`clock` is the app's, one per process).

    The token is still looked up on every batch: a revoked or removed device is refused on its very next
    one. Committed before the answer goes out; a failure here is a 503 and the meter's retry is a duplicate.
    """
    if not clock.due(device.device_id):
        return
    async with pool.connection() as conn:
        await devices.record_sync(conn, device_id=device.device_id)
    clock.written(device.device_id)  # only now, committed: a rolled-back write is tried again


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed when gzip; 413 past `limit` bytes (before or after decompression)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BatchRejected(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Encoding {encoding!r} is not supported: send the batch as plain JSON or gzip",
        )
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise BatchRejected(status.HTTP_400_BAD_REQUEST, f"the body is not valid gzip ({error})") from None
    if len(inflated) > limit or decompressor.unconsumed_tail:
        raise BatchRejected(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the batch is over {limit} bytes once decompressed: send fewer rows per batch",
        )
    if not decompressor.eof:
        raise BatchRejected(
            status.HTTP_400_BAD_REQUEST, "the body is not valid gzip (the stream is truncated)"
        )
    return inflated


def one_row_per_uid(rows: list[WireRow]) -> list[WireRow]:
    """The rows with each request_uid once (its first copy), or `BatchRejected` naming both rows of a
    request_uid sent twice with different content.

    Identical copies are the same call sent twice: accepted, stored once and counted as duplicates. Copies
    that differ cannot both be true, and keeping either would drop the other silently."""
    if len(set(map(FIELD["request_uid"], rows))) == len(rows):  # the usual batch: one set, nothing more
        return rows
    first: dict[UUID, int] = {}
    conflicts = []
    for index, row in enumerate(rows):
        earlier = first.setdefault(row.request_uid, index)
        if earlier != index and rows[earlier] != row:
            conflicts.append((earlier, index))
    if conflicts:
        one, other = conflicts[0]
        raise BatchRejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"rows {one} and {other} have the same request_uid with different content; {len(conflicts)} such "
            "pair(s): a request_uid names one call; nothing from this batch was stored",
            [
                {
                    "row": row,
                    "field": "request_uid",
                    "message": f"the same request_uid as row {twin}, with different content",
                }
                for pair in conflicts[: MAX_REPORTED_ERRORS // 2]
                for row, twin in (pair, pair[::-1])
            ],
        )
    return [row for index, row in enumerate(rows) if first[row.request_uid] == index]


def _too_large(size: int, limit: int) -> BatchRejected:
    return BatchRejected(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"the batch is {size} bytes or more; the limit is {limit} bytes: send fewer rows per batch",
    )


def parse_batch(body: bytes, *, max_rows: int, machine_id: str, window: IngestWindow) -> WireBatch:
    """Validate the whole batch; raises `BatchRejected` naming the row and field of each problem."""
    batch = decode_batch(body)  # the fast path, for batches certainly valid (see batch_decoding)
    if batch is None:
        try:
            batch = from_model(RequestBatch.model_validate_json(body))
        except ValidationError as error:
            raise _diagnose(body, error, max_rows) from None
    if len(batch.rows) > max_rows:
        raise _too_many_rows(len(batch.rows), max_rows)
    if set(map(FIELD["machine_id"], batch.rows)) != {machine_id}:
        wrong = [(i, row.machine_id) for i, row in enumerate(batch.rows) if row.machine_id != machine_id]
        index, found = wrong[0]
        raise BatchRejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"row {index}: machine_id {found!r} is not this token's machine ({machine_id!r}); "
            f"{len(wrong)} row(s) affected: a sync token sends only its own machine's rows",
            [
                {"row": i, "field": "machine_id", "message": f"expected {machine_id!r}, got {m!r}"}
                for i, m in wrong[:MAX_REPORTED_ERRORS]
            ],
        )
    outside = window.problems(batch.rows)
    if outside:
        problem = outside[0]
        raise BatchRejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"row {problem['row']}, {problem['field']}: {problem['message']}; {len(outside)} row(s) outside the "
            "ingestion window; nothing from this batch was stored",
            outside[:MAX_REPORTED_ERRORS],
        )
    return batch


def _too_many_rows(count: int, limit: int) -> BatchRejected:
    return BatchRejected(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"the batch has {count} rows; the limit is {limit} rows: split it into smaller batches",
    )


def _diagnose(body: bytes, error: ValidationError, max_rows: int) -> BatchRejected:
    try:
        document = from_json(body)
    except ValueError as problem:
        return BatchRejected(status.HTTP_400_BAD_REQUEST, f"the body is not valid JSON: {problem}")
    if not isinstance(document, dict):
        return BatchRejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "the body must be a JSON object with schema_version, batch_id and rows",
        )
    rows = document.get("rows")
    if isinstance(rows, list) and len(rows) > max_rows:
        return _too_many_rows(len(rows), max_rows)
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return BatchRejected(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"schema_version {version!r} is not supported: this server reads schema_version {SCHEMA_VERSION}; "
            "upgrade the server or downgrade the meter",
            [{"row": None, "field": "schema_version", "message": f"expected {SCHEMA_VERSION}"}],
        )
    errors = [_describe(e) for e in error.errors(include_url=False)]
    first = errors[0]
    where = f"row {first['row']}" if first["row"] is not None else "batch"
    field = f", {first['field']}" if first["field"] else ""
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return BatchRejected(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        f"{where}{field}: {first['message']}{more}; nothing from this batch was stored",
        errors[:MAX_REPORTED_ERRORS],
    )


def _describe(error: Any) -> dict[str, Any]:
    loc = list(error.get("loc", ()))
    row = None
    if len(loc) >= 2 and loc[0] == "rows" and isinstance(loc[1], int):
        row = loc[1]
        loc = loc[2:]
    # Strip pydantic's union/function markers so the field reads as the row's own key.
    field = ".".join(
        str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function")))
    )
    return {"row": row, "field": field or None, "message": error.get("msg", "invalid")}
