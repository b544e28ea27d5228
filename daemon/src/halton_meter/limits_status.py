"""The hard limits part of ``halton-meter status``: which limits are in force, and when the meter does not
enforce them, why (no figure yet, a stale figure and what stopped the fetch, a figure the cloud could not
compute)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from halton_meter import spend_limits
from halton_meter.cloud.state import ago


@dataclass
class ProjectLimit:
    project: str
    budget_usd: Decimal
    cloud_usd: Decimal | None
    local_usd: Decimal
    enforced: bool
    reached: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "budget_usd": str(self.budget_usd),
            "cloud_month_to_date_usd": str(self.cloud_usd) if self.cloud_usd is not None else None,
            "local_unsynced_usd": str(self.local_usd),
            "enforced": self.enforced,
            "reached": self.reached,
            "note": self.note,
        }


@dataclass
class LimitsStatus:
    enforcing: bool
    summary: str  # one line: "2 in force" or "not enforcing: …"
    fetched_at: datetime | None
    fresh_minutes: float
    projects: list[ProjectLimit] = field(default_factory=list)
    pending_overrides: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "enforcing": self.enforcing,
            "summary": self.summary,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "fresh_minutes": self.fresh_minutes,
            "projects": [p.to_json() for p in self.projects],
            "pending_overrides": self.pending_overrides,
            "events": self.events,
        }


def limits_status(
    conn: sqlite3.Connection, *, now: datetime, fresh_minutes: float, paired: bool, cloud_problem: str | None
) -> LimitsStatus:
    """``cloud_problem``: what the cloud part of status says is wrong (paused, last error), if anything."""
    known = spend_limits.load(conn)
    window = timedelta(minutes=fresh_minutes)
    fresh = known.fresh(now, window)
    status = LimitsStatus(
        enforcing=False,
        summary="",
        fetched_at=known.fetched_at,
        fresh_minutes=fresh_minutes,
        pending_overrides=spend_limits.pending_overrides(conn),
        events=spend_limits.count_events(conn),
    )
    for limit in known.limits.values():
        local = spend_limits.local_spend_since(conn, limit, now)
        decision = spend_limits.decide(limit, limits=known, now=now, window=window, local_usd=local)
        enforced = fresh and limit.month_to_date_usd is not None and limit.month == spend_limits.month_of(now)
        status.projects.append(
            ProjectLimit(
                project=limit.project,
                budget_usd=limit.budget_usd,
                cloud_usd=limit.month_to_date_usd,
                local_usd=local,
                enforced=enforced,
                reached=decision.block,
                note=("reached: calls are refused" if decision.block else decision.reason),
            )
        )
    if known.fetched_at is None:
        status.summary = (
            "none: not connected to a cloud"
            if not paired
            else "not enforcing: no spend figure fetched from the cloud yet"
            + (f" ({cloud_problem})" if cloud_problem else "")
        )
        return status
    if not fresh:
        age = ago((now - known.fetched_at).total_seconds()).removesuffix(" ago")
        cause = _cause(known, cloud_problem)
        status.summary = (
            f"not enforcing: last spend figure {age} old (fresh for {fresh_minutes:g} min)"
            + (f", {cause}" if cause else "")
            + ": calls pass"
        )
        return status
    if not known.limits:
        status.summary = "none: no project's budget is a hard limit"
        return status
    in_force = [p for p in status.projects if p.enforced]
    status.enforcing = bool(in_force)
    unknown = [p.project for p in status.projects if not p.enforced]
    status.summary = f"{len(in_force)} in force" + (
        f"; not enforcing {', '.join(unknown)} (no spend figure from the cloud)" if unknown else ""
    )
    return status


def _cause(known: spend_limits.Limits, cloud_problem: str | None) -> str | None:
    if (
        known.last_error
        and known.last_error_at
        and known.fetched_at
        and known.last_error_at > known.fetched_at
    ):
        return f"cloud unreachable ({known.last_error})"
    return cloud_problem
