"""Paired machines: the devices settings page (rename, revoke, remove, reinstate) and its JSON twin."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import ApiReader, Conn, CsrfProtected, DeviceManager, Member
from halton_api.models import DevicePublic
from halton_api.pages import redirect, render
from halton_api.store import devices

router = APIRouter(prefix="/v1/{workspace}/devices", tags=["devices"])
pages = APIRouter(prefix="/{workspace}/settings/devices", include_in_schema=False)


@router.get("", response_model=list[DevicePublic], summary="Paired devices")
async def list_devices(ctx: ApiReader, conn: Conn) -> list[DevicePublic]:
    return await devices.list_devices(conn, workspace_id=ctx.workspace.id)


@router.get("/{device_id}", response_model=DevicePublic, summary="One paired device")
async def get_device(device_id: UUID, ctx: ApiReader, conn: Conn) -> DevicePublic:
    return await devices.get_device(conn, workspace_id=ctx.workspace.id, device_id=device_id)


@pages.get("")
async def devices_page(request: Request, ctx: Member, conn: Conn) -> Response:
    listed = await devices.list_devices(conn, workspace_id=ctx.workspace.id)
    return await render(request, "settings/devices.html", conn=conn, ctx=ctx, devices=listed)


def _back(ctx: DeviceManager, notice: str) -> Response:
    return redirect(f"/{ctx.workspace.slug}/settings/devices", notice)


@pages.post("/{device_id}/rename", dependencies=[CsrfProtected])
async def rename(
    device_id: UUID, ctx: DeviceManager, conn: Conn, name: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    device = await devices.rename_device(
        conn, workspace_id=ctx.workspace.id, device_id=device_id, name=name, actor=ctx.actor
    )
    return _back(ctx, f"renamed to {device.display_name}")


@pages.post("/{device_id}/revoke", dependencies=[CsrfProtected])
async def revoke(device_id: UUID, ctx: DeviceManager, conn: Conn) -> Response:
    device = await devices.set_status(
        conn, workspace_id=ctx.workspace.id, device_id=device_id, status="revoked", actor=ctx.actor
    )
    return _back(ctx, f"{device.display_name}: token revoked; the machine must pair again")


@pages.post("/{device_id}/remove", dependencies=[CsrfProtected])
async def remove(device_id: UUID, ctx: DeviceManager, conn: Conn) -> Response:
    device = await devices.set_status(
        conn, workspace_id=ctx.workspace.id, device_id=device_id, status="removed", actor=ctx.actor
    )
    return _back(ctx, f"{device.display_name} removed from the workspace; reinstate it to let it sync again")


@pages.post("/{device_id}/reinstate", dependencies=[CsrfProtected])
async def reinstate(device_id: UUID, ctx: DeviceManager, conn: Conn) -> Response:
    device = await devices.set_status(
        conn, workspace_id=ctx.workspace.id, device_id=device_id, status="active", actor=ctx.actor
    )
    return _back(ctx, f"{device.display_name} reinstated; run `halton-meter cloud resume` on it")
