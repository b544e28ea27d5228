"""Priced requests from `marts.requests`: the recent-requests tables (paged newest first, searchable by
provider_request_id or request_uid) and one request's full row for its trace."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client
from fastapi.responses import Response

from halton_api.dashboards.filters import Scope
from halton_api.dashboards.page_models import RequestRowPublic, RequestTable
from halton_api.dashboards.reader import Marts
from halton_api.dashboards.spend import as_moment
from halton_api.warehouse_access.raw_requests import decode_cursor, encode_cursor
from halton_meter.csv_export import SafeCsvWriter

PAGE_SIZE = 100
_COLUMNS = (
    "request_uid", "started_at", "provider", "model", "project", "device_id", "status_code", "streamed",
    "input_tokens", "output_tokens", "cost_usd", "cost_source", "latency_ms", "provider_request_id",
)  # fmt: skip
CSV_COLUMNS = (*_COLUMNS[:6], "device", *_COLUMNS[6:])


def recent(
    client: Client,
    m: Marts,
    scope: Scope,
    *,
    device_name,
    limit: int = PAGE_SIZE,
    cursor: str | None = None,
    search: str | None = None,
    prompt_hash: str | None = None,
    skip: Sequence[str] = (),
) -> RequestTable:
    """A page of the scope's requests, newest first; `search` is a request_uid, or (part of) a
    provider_request_id, looked for on every date; `prompt_hash` keeps one prompt cluster's requests (within
    the rail's dates, as the clusters page counted them)."""
    hourly = scope.period.hourly
    # A search is for one call: it looks across all dates (an id pasted from a provider's console is rarely
    # from the rail's range); the rail's other filters still apply.
    time_column = None if search else "started_at" if hourly else "day"
    where, params = scope.condition(time_column=time_column, skip=skip, origin=True)
    before = None
    if cursor:
        when, uid = decode_cursor(cursor)
        before = when
        where += " AND (started_at, request_uid) < (%(c_when)s, %(c_uid)s)"
        params.update(c_when=when.astimezone(UTC).replace(tzinfo=None), c_uid=uid)
    if search:
        try:
            params["s_uid"] = UUID(search.strip())
            where += " AND request_uid = %(s_uid)s"
        except ValueError:
            params["s_prid"] = search.strip()
            where += " AND positionCaseInsensitive(ifNull(provider_request_id, ''), %(s_prid)s) > 0"
    if prompt_hash:
        params["s_hash"] = prompt_hash
        where += " AND prompt_hash = %(s_hash)s"
    params["limit"] = limit + 1
    # `day` leads the order: the table is sorted by (workspace_id, day, …), and day is started_at's date.
    statement = (
        f"SELECT {', '.join(_COLUMNS)} FROM {m.marts}.requests WHERE {{where}}"
        " ORDER BY day DESC, started_at DESC, request_uid DESC LIMIT %(limit)s"
    )
    rows: list = []
    # The spend marts behind the cutoff know nothing of branches: a view filtered by one reads the period.
    cutoff = (
        None
        if search or prompt_hash or scope.filters.by_origin
        else _cutoff(client, m, scope, limit + 1, before, skip)
    )
    if cutoff is not None:
        column = "started_at" if hourly else "day"
        rows = client.query(
            statement.format(where=f"{where} AND {column} >= %(cutoff)s"),
            parameters={**params, "cutoff": cutoff},
        ).result_rows
    if len(rows) <= limit:  # no cutoff, or the spend marts lag the requests: read the whole period
        rows = client.query(statement.format(where=where), parameters=params).result_rows
    page = []
    for values in rows[:limit]:
        row = dict(zip(_COLUMNS, values, strict=True))
        row["started_at"] = as_moment(row["started_at"])
        row["device"] = device_name(row["device_id"])
        page.append(RequestRowPublic.model_validate(row))
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1].started_at, page[-1].request_uid) if more and page else None
    return RequestTable(rows=page, next_cursor=next_cursor, search=search or None)


def _cutoff(client: Client, m: Marts, scope: Scope, need: int, before: datetime | None, skip: Sequence[str]):
    """The latest day (hour, for a 24-hour view) from which on the view holds at least `need` requests before
    `before`, counted on the spend marts: the page's query then reads those few days, not the whole period (a
    sort over 30 days of a big workspace costs ~0.25 s; a day or two, milliseconds). None when the period
    holds fewer (read it all)."""
    hourly = scope.period.hourly
    table, bucket = ("hourly_spend", "hour") if hourly else ("daily_spend", "day")
    where, params = scope.condition(time_column="hour" if hourly else "day", skip=skip)
    if before is not None:
        # The cursor's own bucket is counted as empty (part of it is after the cursor): the cutoff then
        # lands at least one bucket earlier, never too late.
        start = before.replace(minute=0, second=0, microsecond=0, tzinfo=None) if hourly else before.date()
        where += f" AND {bucket} <= %(c_bucket)s"
        params["c_bucket"] = start
    counts = client.query(
        f"SELECT {bucket} AS b, sum(requests) FROM {m.marts}.{table} WHERE {where} GROUP BY b ORDER BY b DESC",
        parameters=params,
    ).result_rows
    total = 0
    for moment, requests in counts:
        if before is not None and moment == params["c_bucket"]:
            continue
        total += int(requests)
        if total >= need:
            return moment
    return None


def csv_response(table: RequestTable, filename: str) -> Response:
    """The visible rows as a CSV download (the project pages' and the audit log's request tables)."""
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(table))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
