"""What a paired meter asks about or says about itself: `whoami`, `report` and `disconnect`."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from halton_api.deps import ActiveDevice, Conn, KnownDevice
from halton_api.models import MeterReport, Problem, WhoAmI
from halton_api.store import devices

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
async def whoami(device: ActiveDevice) -> WhoAmI:
    return WhoAmI(
        workspace_id=device.workspace.id,
        workspace_slug=device.workspace.slug,
        workspace_name=device.workspace.name,
        device_id=device.device_id,
        machine_id=device.machine_id,
        hostname=device.hostname,
    )


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
