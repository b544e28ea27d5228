"""Captured requests in the warehouse: the dedupe probe for ingestion and the deduplicated read path.

These functions are synchronous and take a clickhouse-connect client: run them through
`WarehousePool.run`. Every read goes through `requests_dedup` (FINAL): merges are never trusted.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from halton_api.errors import Invalid
from halton_api.models import RequestPublic
from halton_warehouse import Databases

_LISTED = tuple(RequestPublic.model_fields)


@dataclass(frozen=True)
class ProbeScope:
    """Where rows already stored may repeat a batch's rows: the rows' UTC days, and per machine the window
    from its first to its last start. A re-sent row has its machine and start, so it is always inside.

    raw.requests is sorted by (workspace_id, day, machine_id, started_at, request_uid): the probe reads only
    these machines' windows, not the whole day of the workspace (against a 2-million-row day, 40-60 -> 6-10
    ms of warehouse CPU per 1,000 UUIDs; warehouse migration 0005, bench/RESULTS.md "Ingestion").
    """

    days: frozenset[date]
    windows: dict[str, tuple[datetime, datetime]]

    def condition(self) -> tuple[str, dict[str, str]]:
        """The WHERE terms and their parameters: dates and times inlined from typed values, machine ids (text
        a meter chose at pairing) bound as parameters."""
        day_list = ",".join(f"'{day.isoformat()}'" for day in sorted(self.days))
        windows = " OR ".join(
            f"(machine_id = {{m{i}:String}} AND started_at BETWEEN '{_milliseconds(first)}'"
            f" AND '{_milliseconds(last)}')"
            for i, (first, last) in enumerate(self.windows.values())
        )
        parameters = {f"m{i}": machine for i, machine in enumerate(self.windows)}
        return f"toDate(started_at) IN ({day_list}) AND ({windows})", parameters


def _milliseconds(moment: datetime) -> str:
    """UTC to the millisecond, truncated as DateTime64(3) stores it (so the stored value is in the window)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# A meter sends each call once, oldest first, so the windows of a new batch's machines usually hold none of
# the workspace's rows. The probe therefore first lists what the windows hold, without naming a UUID: under
# load 11-36 ms of warehouse time against 15-45 with the batch's UUIDs in the query, and at one meter 19-23
# ms of warehouse CPU per 1,000 rows instead of 22-30 (bench/RESULTS.md, "Ingestion"). A window holding more
# than LISTED_PER_UUID rows per UUID asked (plus LISTED_FLOOR) spans far more than the batch, e.g. one old
# row among new ones: the listing stops there and the probe names the UUIDs instead.
LISTED_PER_UUID = 2
LISTED_FLOOR = 1_000
# Named, the UUIDs go as an IN list or as one string read by `format()`: ClickHouse's analyzer pays about 5
# ms of CPU per 1,000 IN literals, about 0.5 ms per 1,000 plus 4 ms once for the string. So an IN list up
# to PROBE_LIST_LIMIT UUIDs (one meter's batch), one string above it.
PROBE_LIST_LIMIT = 1_500
DEFAULT_MAX_QUERY_SIZE = 262_144  # ClickHouse's default max_query_size, in bytes


def existing_uids(
    client: Client,
    *,
    databases: Databases,
    workspace_id: UUID,
    uids: Collection[UUID],
    scope: ProbeScope,
) -> set[UUID]:
    """Which of `uids` the workspace already has within `scope`."""
    if not uids:
        return set()
    # Values are inlined by hand from typed UUIDs and dates (nothing a client wrote reaches the SQL as text):
    # clickhouse-connect's parameter binding and Native result parsing cost more than the query itself for
    # a thousand UUIDs.
    if not all(isinstance(uid, UUID) for uid in uids) or not isinstance(workspace_id, UUID):
        raise TypeError("existing_uids takes UUID objects")
    where, parameters = scope.condition()
    stored = f"SELECT DISTINCT request_uid FROM {databases.raw}.requests WHERE workspace_id = '{workspace_id}' AND {where}"
    most = LISTED_PER_UUID * len(uids) + LISTED_FLOOR
    listed = _uids(client, f"{stored} LIMIT {most + 1}", parameters)
    if len(listed) <= most:
        return listed.intersection(uids)
    if len(uids) <= PROBE_LIST_LIMIT:
        named = ",".join(f"'{uid}'" for uid in uids)
    else:
        named = "SELECT uid FROM format(TSV, 'uid UUID', '" + "\\n".join(map(str, uids)) + "')"
    return _uids(client, f"{stored} AND request_uid IN ({named})", parameters)


def stored_prices(
    client: Client,
    *,
    databases: Databases,
    workspace_id: UUID,
    uids: Collection[UUID],
    scope: ProbeScope,
) -> dict[UUID, tuple[Decimal | None, str | None]]:
    """The cost and price card of the newest stored copy of each of `uids` (rows the probe found stored).

    A meter re-sends a row it priced again (a new catalogue priced a call it had recorded unpriced): that copy
    is a correction, not a duplicate, and ingestion writes it; the newer `ingested_at` wins on every read."""
    if not uids:
        return {}
    if not all(isinstance(uid, UUID) for uid in uids) or not isinstance(workspace_id, UUID):
        raise TypeError("stored_prices takes UUID objects")
    where, parameters = scope.condition()
    named = ",".join(f"'{uid}'" for uid in uids)
    # A tuple, not two argMax: argMax skips NULL arguments, and "unpriced" (NULL cost) is a price state.
    result = client.query(
        f"SELECT request_uid, argMax(tuple(cost_usd, price_card), ingested_at) FROM {databases.raw}.requests"
        f" WHERE workspace_id = '{workspace_id}' AND {where} AND request_uid IN ({named}) GROUP BY request_uid",
        parameters=parameters,
    )
    return {uid: (price[0], price[1]) for uid, price in result.result_rows}


def _uids(client: Client, query: str, parameters: dict[str, str]) -> set[UUID]:
    size = len(query)  # ASCII: characters are bytes
    settings = {"max_query_size": size + 4096} if size + 4096 > DEFAULT_MAX_QUERY_SIZE else None
    body = client.raw_query(query, parameters=parameters, settings=settings, fmt="TabSeparated")
    return {UUID(line) for line in body.decode().split()}


def encode_cursor(started_at: datetime, request_uid: UUID) -> str:
    """A keyset cursor for tables of requests ordered newest first: where the page ended."""
    if started_at.tzinfo is None:  # the warehouse's DateTime64 columns are UTC
        started_at = started_at.replace(tzinfo=UTC)
    raw = f"{started_at.astimezone(UTC).isoformat()}|{request_uid}"
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
        raise Invalid(
            "cursor: not one this API gave out; pass next_cursor (or follow the Older link) of the previous page"
        ) from None


def list_requests(
    client: Client,
    *,
    databases: Databases,
    workspace_id: UUID,
    limit: int,
    cursor: str | None = None,
    provider_request_id: str | None = None,
) -> tuple[list[RequestPublic], str | None]:
    """Newest first, `limit` at a time; returns the page and the cursor of the next one."""
    where = ["workspace_id = %(workspace)s"]
    parameters: dict[str, Any] = {"workspace": workspace_id, "limit": limit + 1}
    if cursor:
        when, uid = decode_cursor(cursor)
        where.append("(started_at, request_uid) < (%(when)s, %(uid)s)")
        parameters.update(when=when.astimezone(UTC).replace(tzinfo=None), uid=uid)
    if provider_request_id:
        where.append("provider_request_id = %(prid)s")
        parameters["prid"] = provider_request_id
    result = client.query(
        f"SELECT {', '.join(_LISTED)} FROM {databases.raw}.requests_dedup WHERE {' AND '.join(where)}"
        " ORDER BY started_at DESC, request_uid DESC LIMIT %(limit)s",
        parameters=parameters,
    )
    rows = [
        RequestPublic.model_validate(_aware(dict(zip(_LISTED, row, strict=True))))
        for row in result.result_rows
    ]
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].started_at, page[-1].request_uid) if len(rows) > limit else None
    return page, next_cursor


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("started_at", "ended_at"):
        value = row[key]
        if isinstance(value, datetime) and value.tzinfo is None:
            row[key] = value.replace(tzinfo=UTC)
    return row
