"""Hard limits (issue 24): when a call of a limited project is refused, and the store's side of it.

An owner marks a project's budget as a hard limit in the cloud. On sync the meter fetches each limited
project's budget and month-to-date spend (``GET /v1/daemon/whoami``), with the time that figure is as of,
and keeps them with when it fetched them (store tables ``spend_limits``, ``spend_limit_fetch``). Before
forwarding a call of such a project, :func:`decide` adds this meter's own spend the figure cannot hold yet
(its rows of the month not synced, or synced after the figure's time) and refuses the call once the sum
reaches the budget. It never refuses on a figure it cannot trust: none fetched, fetched longer ago than
``[limits] fresh_minutes``, of another month, or one the cloud could not compute.

Each refusal and each override (header ``X-Halton-Override: budget``, or ``halton-meter override <project>``
for the next call) is kept in ``limit_events`` until the cloud has it (its audit log).

Light on purpose (sqlite3 and the standard library): ``halton-meter status`` and ``override`` import it.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from halton_meter.store import nanos_to_usd, parse_ts, transaction, ts, usd_to_nanos

OVERRIDE_HEADER = "X-Halton-Override"
OVERRIDE_VALUE = "budget"


@dataclass(frozen=True)
class SpendLimit:
    """One limited project as the cloud last told it."""

    project: str
    budget_usd: Decimal
    month: str  # YYYY-MM, the UTC month of the figure
    month_to_date_usd: Decimal | None  # None: the cloud could not tell
    spend_as_of: datetime | None  # the figure holds every row the cloud ingested up to then
    problem: str | None = None


@dataclass(frozen=True)
class Limits:
    """What the last fetch said, and when it happened (None: never)."""

    fetched_at: datetime | None
    limits: dict[str, SpendLimit]
    last_error: str | None = None
    last_error_at: datetime | None = None

    def fresh(self, now: datetime, window: timedelta) -> bool:
        return self.fetched_at is not None and now - self.fetched_at <= window


@dataclass(frozen=True)
class Decision:
    block: bool
    spend_usd: Decimal | None  # the figure plus this meter's own spend since it, when known
    reason: str  # why the call passes or not, for logs and `status`


def month_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def decide(
    limit: SpendLimit | None, *, limits: Limits, now: datetime, window: timedelta, local_usd: Decimal
) -> Decision:
    """Refuse the call only on a fresh figure of this month that, with ``local_usd``, reaches the budget."""
    if limit is None:
        return Decision(False, None, "no limit on this project")
    if not limits.fresh(now, window):
        return Decision(False, None, "no fresh spend figure: calls pass")
    if limit.month_to_date_usd is None:
        return Decision(
            False, None, f"the cloud has no spend figure ({limit.problem or 'unknown'}): calls pass"
        )
    if limit.month != month_of(now):
        return Decision(False, None, f"the spend figure is of {limit.month}: calls pass until the next fetch")
    spend = limit.month_to_date_usd + local_usd
    if spend >= limit.budget_usd:
        return Decision(True, spend, f"${spend:,.2f} spent of a ${limit.budget_usd:,.2f} budget")
    return Decision(False, spend, f"${spend:,.2f} spent of a ${limit.budget_usd:,.2f} budget")


# ---------------------------------------------------------------------------------------------------
# The store's side


def save_fetched(conn: sqlite3.Connection, limits: list[SpendLimit], at: datetime) -> None:
    """Replace the limits with what the cloud just said (no limit left: the table empties)."""
    with transaction(conn):
        conn.execute("DELETE FROM spend_limits")
        conn.executemany(
            "INSERT INTO spend_limits (project, budget_nusd, month, spend_nusd, spend_as_of, problem)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    limit.project,
                    usd_to_nanos(limit.budget_usd),
                    limit.month,
                    usd_to_nanos(limit.month_to_date_usd),
                    ts(limit.spend_as_of) if limit.spend_as_of else None,
                    limit.problem,
                )
                for limit in limits
            ],
        )
        conn.execute(
            "INSERT INTO spend_limit_fetch (id, fetched_at) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET fetched_at = excluded.fetched_at, last_error = NULL,"
            " last_error_at = NULL",
            (ts(at),),
        )


def forget_limits(conn: sqlite3.Connection) -> None:
    """The pairing is gone: no limit is known any more (events not yet sent stay, as unsynced rows do)."""
    with transaction(conn):
        conn.execute("DELETE FROM spend_limits")
        conn.execute("DELETE FROM spend_limit_fetch")
        conn.execute("DELETE FROM limit_overrides")


def save_failure(conn: sqlite3.Connection, error: str, at: datetime) -> None:
    """A fetch failed (the limits fetched before stay, and age)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO spend_limit_fetch (id, last_error, last_error_at) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            (error[:500], ts(at)),
        )


def load(conn: sqlite3.Connection) -> Limits:
    fetch = conn.execute("SELECT fetched_at, last_error, last_error_at FROM spend_limit_fetch").fetchone()
    rows = conn.execute(
        "SELECT project, budget_nusd, month, spend_nusd, spend_as_of, problem FROM spend_limits"
    ).fetchall()
    limits = {
        row[0]: SpendLimit(
            project=row[0],
            budget_usd=nanos_to_usd(row[1]) or Decimal(0),
            month=row[2],
            month_to_date_usd=nanos_to_usd(row[3]),
            spend_as_of=parse_ts(row[4]) if row[4] else None,
            problem=row[5],
        )
        for row in rows
    }
    if fetch is None:
        return Limits(None, limits)
    return Limits(
        fetched_at=parse_ts(fetch[0]) if fetch[0] else None,
        limits=limits,
        last_error=fetch[1],
        last_error_at=parse_ts(fetch[2]) if fetch[2] else None,
    )


def local_spend_since(conn: sqlite3.Connection, limit: SpendLimit, now: datetime) -> Decimal:
    """This meter's spend on the project this month that the cloud's figure cannot hold: rows not synced
    yet, or synced after the figure's time (the meter's clock against the cloud's: a skew of a few seconds
    counts a row twice or not at all, at the edge)."""
    start = ts(month_start(now))
    if limit.spend_as_of is None:
        sql = "SELECT COALESCE(SUM(cost_nusd), 0) FROM requests WHERE project = ? AND started_at >= ?"
        params: tuple[Any, ...] = (limit.project, start)
    else:
        sql = (
            "SELECT COALESCE(SUM(cost_nusd), 0) FROM requests WHERE project = ? AND started_at >= ?"
            " AND (synced_at IS NULL OR synced_at > ?)"
        )
        params = (limit.project, start, ts(limit.spend_as_of))
    return nanos_to_usd(int(conn.execute(sql, params).fetchone()[0])) or Decimal(0)


def grant_override(conn: sqlite3.Connection, project: str, at: datetime) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO limit_overrides (project, granted_at) VALUES (?, ?)"
            " ON CONFLICT (project) DO UPDATE SET granted_at = excluded.granted_at",
            (project, ts(at)),
        )


def take_override(conn: sqlite3.Connection, project: str) -> bool:
    """Use up the project's pending override, if there is one (exactly one call gets it)."""
    with transaction(conn):
        return conn.execute("DELETE FROM limit_overrides WHERE project = ?", (project,)).rowcount > 0


def pending_overrides(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT project FROM limit_overrides ORDER BY project")]


@dataclass(frozen=True)
class LimitEvent:
    kind: str  # "blocked" or "override"
    via: str | None  # "header" or "command" for an override
    project: str
    provider: str
    model: str | None
    at: datetime
    budget_usd: Decimal
    spend_usd: Decimal
    event_uid: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "event_uid": self.event_uid,
            "kind": self.kind,
            "via": self.via,
            "project": self.project,
            "provider": self.provider,
            "model": self.model,
            "occurred_at": self.at.isoformat(),
            "budget_usd": str(self.budget_usd.quantize(Decimal("0.01"))),
            "spend_usd": str(self.spend_usd.quantize(Decimal("0.000000001"))),
        }


def record_event(conn: sqlite3.Connection, event: LimitEvent) -> str:
    uid = event.event_uid or str(uuid.uuid4())
    with transaction(conn):
        conn.execute(
            "INSERT INTO limit_events (event_uid, at, kind, via, project, provider, model, budget_nusd, spend_nusd)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                uid,
                ts(event.at),
                event.kind,
                event.via,
                event.project,
                event.provider,
                event.model,
                usd_to_nanos(event.budget_usd),
                usd_to_nanos(event.spend_usd),
            ),
        )
    return uid


def unsynced_events(conn: sqlite3.Connection, *, limit: int) -> list[LimitEvent]:
    rows = conn.execute(
        "SELECT event_uid, at, kind, via, project, provider, model, budget_nusd, spend_nusd FROM limit_events"
        " WHERE synced_at IS NULL ORDER BY at LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        LimitEvent(
            event_uid=row[0],
            at=parse_ts(row[1]),
            kind=row[2],
            via=row[3],
            project=row[4],
            provider=row[5],
            model=row[6],
            budget_usd=nanos_to_usd(row[7]) or Decimal(0),
            spend_usd=nanos_to_usd(row[8]) or Decimal(0),
        )
        for row in rows
    ]


def mark_events_synced(conn: sqlite3.Connection, uids: list[str], at: datetime) -> None:
    with transaction(conn):
        conn.executemany(
            "UPDATE limit_events SET synced_at = ? WHERE event_uid = ?", [(ts(at), uid) for uid in uids]
        )


def count_events(conn: sqlite3.Connection) -> dict[str, int]:
    """Events kept here: blocked and overridden calls this month, and how many the cloud lacks."""
    start = ts(month_start(datetime.now(UTC)))
    row = conn.execute(
        "SELECT COALESCE(SUM(kind = 'blocked' AND at >= ?), 0), COALESCE(SUM(kind = 'override' AND at >= ?), 0),"
        " COALESCE(SUM(synced_at IS NULL), 0) FROM limit_events",
        (start, start),
    ).fetchone()
    return {"blocked_this_month": int(row[0]), "overridden_this_month": int(row[1]), "unsynced": int(row[2])}


def parse_wire(document: Any) -> list[SpendLimit]:
    """The ``spend_limits`` of a whoami answer; ValueError naming what is wrong."""
    if document is None:
        return []
    if not isinstance(document, list):
        raise ValueError("spend_limits: not a list")
    out = []
    for i, item in enumerate(document):
        try:
            figure = item.get("month_to_date_usd")
            as_of = item.get("spend_as_of")
            as_of_time = datetime.fromisoformat(as_of) if as_of else None
            if as_of_time is not None and as_of_time.tzinfo is None:
                as_of_time = as_of_time.replace(tzinfo=UTC)
            out.append(
                SpendLimit(
                    project=str(item["project"]),
                    budget_usd=Decimal(str(item["budget_usd"])),
                    month=str(item["month"]),
                    month_to_date_usd=Decimal(str(figure)) if figure is not None else None,
                    spend_as_of=as_of_time,
                    problem=item.get("problem"),
                )
            )
        except (KeyError, TypeError, AttributeError, ArithmeticError, ValueError) as exc:
            raise ValueError(f"spend_limits[{i}]: {exc!r}") from None
    return out
