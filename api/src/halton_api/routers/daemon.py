"""What a paired meter asks about itself: `whoami` and `disconnect`."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from halton_api.deps import ActiveDevice, Conn, KnownDevice
from halton_api.models import Problem, WhoAmI
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
    return Response(status_code=status.HTTP_204_NO_CONTENT)
