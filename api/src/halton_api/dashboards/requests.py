"""Priced requests from `marts.requests`: the recent-requests tables (paged newest first, searchable by
provider_request_id or request_uid) and one request's full row for its trace."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.dashboards.filters import Scope
from halton_api.dashboards.models import RequestRowPublic, RequestTable
from halton_api.dashboards.reader import Marts
from halton_api.errors import Invalid

PAGE_SIZE = 100
_COLUMNS = (
    "request_uid", "started_at", "provider", "model", "project", "device_id", "status_code", "streamed",
    "input_tokens", "output_tokens", "cost_usd", "cost_source", "latency_ms", "provider_request_id",
)  # fmt: skip
CSV_COLUMNS = (*_COLUMNS[:6], "device", *_COLUMNS[6:])


def encode_cursor(started_at: datetime, request_uid: UUID) -> str:
    raw = f"{_aware(started_at).isoformat()}|{request_uid}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, uid = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        when = datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, UUID(uid)
    except ValueError:
        raise Invalid("cursor: not one this page gave out; follow the page's Older link") from None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def recent(
    client: Client,
    m: Marts,
    scope: Scope,
    *,
    device_name,
    limit: int = PAGE_SIZE,
    cursor: str | None = None,
    search: str | None = None,
    skip: Sequence[str] = (),
) -> RequestTable:
    """A page of the scope's requests, newest first; `search` matches provider_request_id or request_uid."""
    time_column = "started_at" if scope.period.hourly else "day"
    where, params = scope.condition(time_column=time_column, skip=skip)
    if cursor:
        when, uid = decode_cursor(cursor)
        where += " AND (started_at, request_uid) < (%(c_when)s, %(c_uid)s)"
        params.update(c_when=when.astimezone(UTC).replace(tzinfo=None), c_uid=uid)
    if search:
        try:
            params["s_uid"] = UUID(search.strip())
            where += " AND request_uid = %(s_uid)s"
        except ValueError:
            params["s_prid"] = search.strip()
            where += " AND provider_request_id = %(s_prid)s"
    params["limit"] = limit + 1
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM {m.marts}.requests WHERE {where}"
        " ORDER BY started_at DESC, request_uid DESC LIMIT %(limit)s",
        parameters=params,
    )
    rows = []
    for values in result.result_rows[:limit]:
        row = dict(zip(_COLUMNS, values, strict=True))
        row["started_at"] = _aware(row["started_at"])
        row["device"] = device_name(row["device_id"])
        rows.append(RequestRowPublic.model_validate(row))
    more = len(result.result_rows) > limit
    next_cursor = encode_cursor(rows[-1].started_at, rows[-1].request_uid) if more and rows else None
    return RequestTable(rows=rows, next_cursor=next_cursor, search=search or None)


def csv_rows(table: RequestTable) -> list[list[Any]]:
    """The visible rows as CSV cells (ISO times, plain decimals)."""
    out = []
    for row in table.rows:
        values = row.model_dump()
        out.append(
            [
                values[c].isoformat()
                if isinstance(values[c], datetime)
                else ""
                if values[c] is None
                else values[c]
                for c in CSV_COLUMNS
            ]
        )
    return out


def one(
    client: Client, m: Marts, *, workspace_id: UUID, request_uid: UUID, day: date | None
) -> dict[str, Any] | None:
    """Every column of one request (`day` narrows the read to one partition when the link carries it)."""
    where = "workspace_id = %(ws)s AND request_uid = %(uid)s"
    params: dict[str, Any] = {"ws": workspace_id, "uid": request_uid}
    if day is not None:
        where += " AND day = %(day)s"
        params["day"] = day
    result = client.query(f"SELECT * FROM {m.marts}.requests WHERE {where} LIMIT 1", parameters=params)
    if not result.result_rows:
        return None
    return dict(zip(result.column_names, result.result_rows[0], strict=True))
