"""Paired machines and their sync tokens.

A device's status decides what its token may do (see migration 0001): `active` syncs; `removed` means an
admin took the machine out of the workspace (403 — the meter pauses with `paused_forbidden` and keeps
its still-valid token, so reinstating the device resumes it); `revoked` means the token is dead (401 —
`paused_unauthorised`; the machine has to pair again). Pairing the same machine id again re-keys the same
device row, so its history stays together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from halton_api import tokens
from halton_api.errors import Conflict, NotFound
from halton_api.models import (
    DeviceCreated,
    DevicePublic,
    DeviceStatus,
    MeterReport,
    UserPublic,
    WorkspacePublic,
)
from halton_api.store import Connection, audit
from halton_api.store.audit import Actor

_SELECT = (
    "SELECT d.id, d.workspace_id, d.machine_id, d.hostname, d.name, u.email AS paired_by_email, d.paired_at,"
    " d.last_sync_at, d.status, d.status_changed_at, d.token_prefix, r.state AS reported_state,"
    " r.paused_reason AS reported_paused_reason, r.unsynced_rows AS reported_unsynced_rows,"
    " r.meter_version AS reported_meter_version, r.reported_at"
    " FROM devices d LEFT JOIN users u ON u.id = d.paired_by LEFT JOIN device_reports r ON r.device_id = d.id"
)

# Which status changes an admin may make, and the audit event each writes.
_TRANSITIONS: dict[tuple[str, str], str] = {
    ("active", "removed"): "device.removed",
    ("active", "revoked"): "device.revoked",
    ("removed", "revoked"): "device.revoked",
    ("removed", "active"): "device.reinstated",
}


@dataclass(frozen=True)
class DeviceAuth:
    """What a sync token proves: this device, in this workspace, with this status."""

    device_id: UUID
    machine_id: str
    hostname: str
    name: str
    status: DeviceStatus
    workspace: WorkspacePublic
    # The latest start of this device's rows the warehouse is known to have (migration 0008), or None.
    written_through: datetime | None = None

    @property
    def actor(self) -> Actor:
        return Actor.device(self.device_id, self.name or self.hostname or self.machine_id)


async def create_device(
    conn: Connection,
    *,
    workspace_id: UUID,
    machine_id: str,
    hostname: str,
    paired_by: UserPublic | None,
    actor: Actor,
) -> DeviceCreated:
    """Pair `machine_id` with the workspace and mint its sync token, returned this once.

    A machine that was paired before (same machine id) gets a new token on the same device row; any
    older token of that machine stops working.
    """
    token = tokens.mint(tokens.DEVICE_TOKEN_PREFIX)
    row = await (
        await conn.execute(
            "INSERT INTO devices (workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (workspace_id, machine_id) DO UPDATE SET hostname = EXCLUDED.hostname,"
            " paired_by = EXCLUDED.paired_by, paired_at = now(), status = 'active', status_changed_at = now(),"
            " token_hash = EXCLUDED.token_hash, token_prefix = EXCLUDED.token_prefix"
            " RETURNING id, (xmax <> 0) AS repaired",
            (
                workspace_id,
                machine_id,
                hostname,
                paired_by.id if paired_by else None,
                tokens.digest(token),
                tokens.shown_prefix(token),
            ),
        )
    ).fetchone()
    assert row is not None
    device = await get_device(conn, workspace_id=workspace_id, device_id=row["id"])
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="device.paired",
        resource_type="device",
        resource_id=device.id,
        resource_label=device.display_name,
        details={"machine_id": machine_id, "hostname": hostname, "repaired": row["repaired"]},
    )
    return DeviceCreated(device=device, token=token)


async def authenticate(conn: Connection, *, token: str) -> DeviceAuth | None:
    """The device a sync token names (whatever its status), or None for an unknown or malformed token."""
    if not tokens.well_formed(token, tokens.DEVICE_TOKEN_PREFIX):
        return None
    row = await (
        await conn.execute(
            "SELECT d.id, d.machine_id, d.hostname, d.name, d.status, d.written_through, w.id AS workspace_id,"
            " w.slug, w.name AS ws_name FROM devices d JOIN workspaces w ON w.id = d.workspace_id WHERE d.token_hash = %s",
            (tokens.digest(token),),
        )
    ).fetchone()
    if row is None:
        return None
    return DeviceAuth(
        device_id=row["id"],
        machine_id=row["machine_id"],
        hostname=row["hostname"],
        name=row["name"],
        status=row["status"],
        workspace=WorkspacePublic(id=row["workspace_id"], slug=row["slug"], name=row["ws_name"]),
        written_through=row["written_through"],
    )


async def get_device(conn: Connection, *, workspace_id: UUID, device_id: UUID) -> DevicePublic:
    row = await (
        await conn.execute(f"{_SELECT} WHERE d.workspace_id = %s AND d.id = %s", (workspace_id, device_id))
    ).fetchone()
    if row is None:
        raise NotFound("no such device in this workspace")
    return DevicePublic.model_validate(row)


async def list_devices(conn: Connection, *, workspace_id: UUID) -> list[DevicePublic]:
    rows = await (
        await conn.execute(
            f"{_SELECT} WHERE d.workspace_id = %s"
            " ORDER BY CASE d.status WHEN 'active' THEN 0 WHEN 'removed' THEN 1 ELSE 2 END, d.paired_at DESC",
            (workspace_id,),
        )
    ).fetchall()
    return [DevicePublic.model_validate(r) for r in rows]


async def rename_device(
    conn: Connection, *, workspace_id: UUID, device_id: UUID, name: str, actor: Actor
) -> DevicePublic:
    device = await get_device(conn, workspace_id=workspace_id, device_id=device_id)
    name = name.strip()
    await conn.execute("UPDATE devices SET name = %s WHERE id = %s", (name, device_id))
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event="device.renamed",
        resource_type="device",
        resource_id=device_id,
        resource_label=name or device.hostname or device.machine_id,
        details={"from": device.name, "to": name},
    )
    return device.model_copy(update={"name": name})


async def set_status(
    conn: Connection, *, workspace_id: UUID, device_id: UUID, status: DeviceStatus, actor: Actor
) -> DevicePublic:
    """Remove, reinstate or revoke a device (see the module docstring for what each means)."""
    row = await (
        await conn.execute(
            "SELECT status FROM devices WHERE workspace_id = %s AND id = %s FOR UPDATE",
            (workspace_id, device_id),
        )
    ).fetchone()
    if row is None:
        raise NotFound("no such device in this workspace")
    event = _TRANSITIONS.get((row["status"], status))
    if event is None:
        if row["status"] == status:
            raise Conflict(f"this device is already {status}")
        raise Conflict(f"a {row['status']} device cannot become {status}: the machine has to pair again")
    await conn.execute(
        "UPDATE devices SET status = %s, status_changed_at = now() WHERE id = %s", (status, device_id)
    )
    device = await get_device(conn, workspace_id=workspace_id, device_id=device_id)
    await audit.record(
        conn,
        workspace_id=workspace_id,
        actor=actor,
        event=event,
        resource_type="device",
        resource_id=device_id,
        resource_label=device.display_name,
        details={"from": row["status"], "to": status, "machine_id": device.machine_id},
    )
    return device


async def record_written_through(conn: Connection, marks: dict[UUID, datetime]) -> None:
    """Move each device's `written_through` forward to its mark, never back. Committed without waiting for
    the disk: a mark lost in a crash only sends that device's next batch through the row-by-row check."""
    await conn.execute("SET LOCAL synchronous_commit = off")
    await conn.execute(
        "UPDATE devices AS d SET written_through = GREATEST(d.written_through, m.through)"
        " FROM unnest(%s::uuid[], %s::timestamptz[]) AS m(id, through) WHERE d.id = m.id",
        (list(marks), list(marks.values())),
    )


async def record_report(conn: Connection, *, device_id: UUID, report: MeterReport | None) -> None:
    """Keep `report` as the device's last one (None: the meter disconnected itself, so it is NOT-CONFIGURED
    and no longer part of the workspace's sync). Committed without waiting for the disk: a report lost in a
    crash is replaced by the meter's next heartbeat."""
    await conn.execute("SET LOCAL synchronous_commit = off")
    values = (
        ("NOT-CONFIGURED", None, 0, "")
        if report is None
        else (report.state, report.paused_reason, report.unsynced_rows, report.meter_version)
    )
    await conn.execute(
        "INSERT INTO device_reports (device_id, state, paused_reason, unsynced_rows, meter_version)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state,"
        " paused_reason = EXCLUDED.paused_reason, unsynced_rows = EXCLUDED.unsynced_rows,"
        " meter_version = CASE WHEN EXCLUDED.meter_version = '' THEN device_reports.meter_version"
        " ELSE EXCLUDED.meter_version END, reported_at = now()",
        (device_id, *values),
    )


async def record_sync(conn: Connection, *, device_id: UUID) -> None:
    await conn.execute("UPDATE devices SET last_sync_at = now() WHERE id = %s", (device_id,))


class SyncClock:
    """When this process last wrote each device's `last_sync_at`, so a busy meter does not write it per batch.

    The dashboards read the last sync to the minute (the sync banner, "quiet for N minutes"), so writing it
    at most every `interval` seconds per device loses nothing anyone sees, and saves a PostgreSQL
    transaction on nearly every batch. A device's first batch after the process starts always writes.
    Mark a write with `written` only once its transaction has committed: a write that rolled back is
    tried again on the next batch.
    """

    def __init__(
        self, interval: float = 10.0, *, limit: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._limit = limit  # devices remembered; past it, start afresh (each device then writes once more)
        self._clock = clock
        self._written: dict[UUID, float] = {}

    def due(self, device_id: UUID) -> bool:
        """Whether this device's sync time should be written now."""
        last = self._written.get(device_id)
        return last is None or self._clock() - last >= self.interval

    def written(self, device_id: UUID) -> None:
        if len(self._written) >= self._limit and device_id not in self._written:
            self._written.clear()
        self._written[device_id] = self._clock()
