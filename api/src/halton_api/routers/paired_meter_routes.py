"""What a paired meter asks about or says about itself: `whoami` (with the hard limits it enforces),
`report`, `limit-events`, `reconcile` and `disconnect`."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Annotated

from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi import APIRouter, Query, Response, status

from halton_api.dashboards.budgets import projects_month_to_date
from halton_api.deps import ActiveDevice, Conn, KnownDevice, Reader, Settings, Writer
from halton_api.errors import Invalid
from halton_api.models import (
    MeterLimitEvents,
    MeterReport,
    MissingAnswer,
    MissingAsk,
    Problem,
    ReconcileDays,
    SpendLimit,
    WhoAmI,
)
from halton_api.store import devices, hard_limits
from halton_api.warehouse_access import meter_reconcile
from halton_api.warehouse_access.client_pool import WarehouseError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/daemon", tags=["daemon"])

_AUTH_ERRORS = {
    401: {"model": Problem, "description": "Unknown or revoked sync token."},
    429: {"model": Problem, "description": "Too many bad tokens from this address (Retry-After)."},
}


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="The workspace and machine a sync token belongs to",
    responses={
        **_AUTH_ERRORS,
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
    },
)
async def whoami(device: ActiveDevice, conn: Conn, reader: Reader) -> WhoAmI:
    # The meter asks after its sync passes (the hard limits ride along, so one round trip refreshes both);
    # the warehouse is read only when the workspace has a limit, and its failure never fails the answer.
    return WhoAmI(
        workspace_id=device.workspace.id,
        workspace_slug=device.workspace.slug,
        workspace_name=device.workspace.name,
        device_id=device.device_id,
        machine_id=device.machine_id,
        hostname=device.hostname,
        spend_limits=await _spend_limits(device, conn, reader),
    )


async def _spend_limits(device: ActiveDevice, conn: Conn, reader: Reader) -> list[SpendLimit]:
    limited = await hard_limits.limited_projects(conn, workspace_id=device.workspace.id)
    if not limited:
        return []
    now = datetime.now(UTC)
    month = now.strftime("%Y-%m")
    slugs = [slug for slug, _ in limited]
    try:
        totals, as_of = await reader.run(
            lambda client, m: projects_month_to_date(client, m, device.workspace.id, slugs, now)
        )
    except (WarehouseError, DatabaseError) as error:  # a meter never blocks on a figure the cloud lacks
        log.warning("hard limits of %s: no spend figure: %s", device.workspace.slug, error)
        problem = f"the cloud cannot read this month's spend: {str(error)[:300]}"
        return [
            SpendLimit(
                project=slug, budget_usd=budget, month=month, month_to_date_usd=None, spend_as_of=None,
                problem=problem,
            )
            for slug, budget in limited
        ]  # fmt: skip
    return [
        SpendLimit(
            project=slug, budget_usd=budget, month=month, month_to_date_usd=totals[slug], spend_as_of=as_of
        )
        for slug, budget in limited
    ]


@router.post(
    "/limit-events",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Calls this meter refused at a project's hard limit, or let through on an override",
    responses={
        **_AUTH_ERRORS,
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
        422: {"model": Problem, "description": "An event is invalid: the detail names the field."},
    },
)
async def limit_events(body: MeterLimitEvents, device: ActiveDevice, conn: Conn) -> Response:
    # Idempotent per event_uid: the meter marks its events sent only after this 2xx, and resends otherwise.
    await hard_limits.record_meter_events(
        conn,
        workspace_id=device.workspace.id,
        device_id=device.device_id,
        actor=device.actor,
        events=body.events,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/report",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="This machine's sync state, unsynced rows and meter version (after a pass; a heartbeat meanwhile)",
    responses={
        **_AUTH_ERRORS,
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
    },
)
async def report(body: MeterReport, device: ActiveDevice, conn: Conn) -> Response:
    # Deliberately apart from /v1/requests/batch: a report is one small upsert every few minutes per meter,
    # and ingestion's hot path stays as it was.
    await devices.record_report(conn, device_id=device.device_id, report=body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/reconcile",
    response_model=ReconcileDays,
    summary="Rows and cost per UTC day that the warehouse holds for this machine",
    responses={
        **_AUTH_ERRORS,
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
        422: {
            "model": Problem,
            "description": "A date is missing or invalid, `to` is before `from`, or the "
            "range is longer than the cloud allows.",
        },
    },
)
async def reconcile_days(
    device: ActiveDevice,
    writer: Writer,
    settings: Settings,
    from_date: Annotated[date, Query(alias="from", description="First UTC day (YYYY-MM-DD).")],
    to_date: Annotated[date, Query(alias="to", description="Last UTC day, inclusive (YYYY-MM-DD).")],
) -> ReconcileDays:
    span = (to_date - from_date).days + 1
    if span < 1:
        raise Invalid(f"to ({to_date}) is before from ({from_date}): pass from <= to")
    if span > settings.reconcile_max_days:
        raise Invalid(
            f"from..to spans {span} days; at most {settings.reconcile_max_days} per request: ask in slices"
        )
    databases = writer.databases
    days = await writer.with_retries(
        lambda client: meter_reconcile.daily_totals(
            client,
            databases=databases,
            workspace_id=device.workspace.id,
            machine_id=device.machine_id,
            first=from_date,
            last=to_date,
        )
    )
    return ReconcileDays(from_date=from_date, to_date=to_date, days=days)


@router.post(
    "/reconcile/missing",
    response_model=MissingAnswer,
    summary="Which of this machine's request_uids for one UTC day the warehouse does not hold",
    responses={
        **_AUTH_ERRORS,
        403: {"model": Problem, "description": "The machine was removed from its workspace."},
        422: {
            "model": Problem,
            "description": "The body is invalid or names more uids than the cloud allows.",
        },
    },
)
async def reconcile_missing(
    body: MissingAsk, device: ActiveDevice, writer: Writer, settings: Settings
) -> MissingAnswer:
    # A set difference rather than a listing of the cloud's uids: the answer is bounded by what was asked,
    # and a matched day costs nothing (the meter only asks about days whose totals differ).
    if len(body.request_uids) > settings.reconcile_max_uids:
        raise Invalid(
            f"request_uids: {len(body.request_uids)} given, at most {settings.reconcile_max_uids} per "
            "request: send the day in slices"
        )
    databases = writer.databases
    missing = await writer.with_retries(
        lambda client: meter_reconcile.missing_uids(
            client,
            databases=databases,
            workspace_id=device.workspace.id,
            machine_id=device.machine_id,
            day=body.day,
            uids=body.request_uids,
        )
    )
    return MissingAnswer(day=body.day, missing=missing)


@router.delete(
    "/disconnect",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke this machine's sync token now",
    responses=_AUTH_ERRORS,
)
async def disconnect(device: KnownDevice, conn: Conn) -> Response:
    await devices.set_status(
        conn,
        workspace_id=device.workspace.id,
        device_id=device.device_id,
        status="revoked",
        actor=device.actor,
    )
    # The meter disconnected itself: it is NOT-CONFIGURED, not a revoked machine that still tries to sync.
    await devices.record_report(conn, device_id=device.device_id, report=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
