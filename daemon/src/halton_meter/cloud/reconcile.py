"""Reconcile: compare this machine's synced rows per UTC day with what the cloud holds, re-send what it lacks.

The cloud answers rows and cost per day for the token's machine (`GET /v1/daemon/reconcile`). Only days
whose totals differ are looked at row by row: their synced request_uids go to the cloud in slices
(`POST /v1/daemon/reconcile/missing`, a set difference bounded by what is asked), and the rows it lacks are
marked unsynced, so the worker's next pass re-sends them (ingestion is idempotent on request_uid). Rows the
cloud holds that the meter does not (a reset database, another copy of machine.json) and costs that differ
are reported, never deleted or changed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from halton_meter.cloud.client import CloudClient
from halton_meter.store import nanos_to_usd, transaction, ts

DEFAULT_DAYS = 30  # what the worker compares daily, and `cloud reconcile` without --days
UIDS_PER_ASK = 1_000  # below the cloud's default reconcile_max_uids (2,000)


@dataclass
class DayDifference:
    day: str
    meter_rows: int
    cloud_rows: int
    meter_cost_usd: str
    cloud_cost_usd: str
    resent_rows: int = 0  # synced here, absent from the cloud: marked unsynced to be sent again
    cloud_only_rows: int = 0  # held by the cloud for this machine, not in this meter's synced rows


@dataclass
class ReconcileResult:
    at: str
    first_day: str
    last_day: str
    matched_days: int = 0
    resent_rows: int = 0
    cloud_only_rows: int = 0
    differences: list[DayDifference] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = f"{self.matched_days} day(s) matched, {self.resent_rows} row(s) re-sent"
        text += f", {len(self.differences)} day(s) differed"
        if self.cloud_only_rows:
            text += f" ({self.cloud_only_rows} row(s) only in the cloud)"
        return text


def local_days(
    conn: sqlite3.Connection, machine_id: str, first: date, last: date
) -> dict[date, tuple[int, int]]:
    """(rows, cost in nano-USD) per UTC day of this machine's synced rows."""
    rows = conn.execute(
        # started_at is stored as UTC text (store.ts), so its first ten characters are the UTC day.
        "SELECT substr(started_at, 1, 10), count(*), coalesce(sum(cost_nusd), 0) FROM requests"
        " WHERE synced_at IS NOT NULL AND machine_id = ? AND started_at >= ? AND started_at < ?"
        " GROUP BY 1",
        (machine_id, first.isoformat(), (last + timedelta(days=1)).isoformat()),
    ).fetchall()
    return {date.fromisoformat(day): (count, nanos) for day, count, nanos in rows}


def _synced_uids(conn: sqlite3.Connection, machine_id: str, day: date) -> list[str]:
    return [
        uid
        for (uid,) in conn.execute(
            "SELECT request_uid FROM requests WHERE synced_at IS NOT NULL AND machine_id = ?"
            " AND started_at >= ? AND started_at < ? ORDER BY request_uid",
            (machine_id, day.isoformat(), (day + timedelta(days=1)).isoformat()),
        )
    ]


def reconcile(
    conn: sqlite3.Connection,
    client: CloudClient,
    token: str,
    *,
    machine_id: str,
    days: int,
    now: datetime,
) -> ReconcileResult:
    """Compare the last `days` UTC days (today included); raises CloudError when the cloud cannot answer."""
    last = now.date()
    first = last - timedelta(days=days - 1)
    result = ReconcileResult(at=ts(now), first_day=first.isoformat(), last_day=last.isoformat())
    cloud = {day: (rows, cost) for day, rows, cost in client.reconcile_days(token, first, last)}
    local = local_days(conn, machine_id, first, last)
    for day in sorted(set(cloud) | set(local)):
        meter_rows, meter_nanos = local.get(day, (0, 0))
        cloud_rows, cloud_cost = cloud.get(day, (0, Decimal(0)))
        meter_cost = nanos_to_usd(meter_nanos) or Decimal(0)
        if meter_rows == cloud_rows and meter_cost == cloud_cost:
            result.matched_days += 1
            continue
        difference = DayDifference(
            day=day.isoformat(),
            meter_rows=meter_rows,
            cloud_rows=cloud_rows,
            meter_cost_usd=str(meter_cost),
            cloud_cost_usd=str(cloud_cost),
        )
        uids = _synced_uids(conn, machine_id, day)
        missing: list[str] = []
        for start in range(0, len(uids), UIDS_PER_ASK):
            missing.extend(client.reconcile_missing(token, day, uids[start : start + UIDS_PER_ASK]))
        if missing:
            with transaction(conn):
                conn.executemany(
                    "UPDATE requests SET synced_at = NULL WHERE request_uid = ?", [(uid,) for uid in missing]
                )
        difference.resent_rows = len(missing)
        difference.cloud_only_rows = max(cloud_rows - (meter_rows - len(missing)), 0)
        result.resent_rows += difference.resent_rows
        result.cloud_only_rows += difference.cloud_only_rows
        result.differences.append(difference)
    return result


def record(conn: sqlite3.Connection, pairing_id: str, result: ReconcileResult) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE cloud_state SET last_reconcile_at = ?, last_reconcile_result = ? WHERE pairing_id = ?",
            (result.at, json.dumps(result.to_json()), pairing_id),
        )
