"""Pairing a meter: `/v1/pairing/start` and `/v1/pairing/poll` for the meter, `/connect` for the person.

The meter asks for a code and long-polls with its poll secret; a signed-in member opens
`/connect?code=XXXX-XXXX`, sees which machine is asking, picks a workspace and approves or denies it.
Guessing codes is rate limited per signed-in user and per address (RFC 8628 §5.1): 8 characters of
base32 is 2^40 codes, so a few wrong tries a minute make a live code practically unguessable in its
10 minutes. Wrong, used, cancelled and expired codes all read "code not found", so a guess learns nothing.
A meter that stops waiting (Ctrl-C, timeout) cancels its code with `/v1/pairing/cancel`, so nobody can
approve a code no machine will collect.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from halton_api.deps import Conn, CsrfProtected, CurrentUser, Settings, client_address, rate_limited
from halton_api.errors import Forbidden
from halton_api.models import Problem, StoredText
from halton_api.pages import render
from halton_api.ratelimit import TokenBucketLimiter
from halton_api.roles import Permission, allows
from halton_api.store import Connection, pairing_codes, workspaces
from halton_api.store.pairing_codes import display_code, normalise_code
from halton_meter.secretbox import fernet_for

router = APIRouter(prefix="/v1/pairing", tags=["pairing"])
pages = APIRouter(include_in_schema=False)

POLL_INTERVAL_SECONDS = 2.0
# How often a held poll looks at the code again; short enough that approval feels instant.
_RECHECK_SECONDS = 0.25
_CIPHER_PURPOSE = "pairing-token"
NOT_FOUND = "code not found: it may have expired (codes last 10 minutes), been cancelled in the terminal that asked for it, or been used; run `halton-meter cloud connect` again for a fresh one"


class PairingStart(BaseModel):
    machine_id: Annotated[StoredText, Field(min_length=1, max_length=128)]
    hostname: Annotated[StoredText, Field(max_length=255)] = ""
    meter_version: Annotated[StoredText, Field(max_length=64)] = ""


class PairingStartedPublic(BaseModel):
    code: str = Field(description="What the person types or follows, `XXXX-XXXX`.")
    poll_secret: str = Field(description="Only the meter knows it; it collects the token with it.")
    approve_url: str
    expires_at: datetime
    interval: float = Field(description="Seconds the meter should wait between polls.")


class PairingPoll(BaseModel):
    poll_secret: Annotated[str, Field(min_length=1, max_length=128)]
    wait_seconds: Annotated[float, Field(ge=0, le=25)] = 20.0


class PairingCancel(BaseModel):
    poll_secret: Annotated[str, Field(min_length=1, max_length=128)]


class PairingCancelledPublic(BaseModel):
    status: Literal["cancelled", "denied", "expired", "consumed"] = Field(
        description="`cancelled`: nobody can approve the code any more (also when it already was). "
        "`denied`/`expired`: it was already dead. `consumed`: the meter had collected its token; "
        "cancelling changed nothing and the device stays paired."
    )


class PairingPollPublic(BaseModel):
    status: Literal["pending", "approved"]
    token: str | None = None
    workspace_id: UUID | None = None
    workspace_slug: str | None = None
    workspace_name: str | None = None
    device_id: UUID | None = None
    machine_id: str | None = None


def _limiter(request: Request, name: str) -> TokenBucketLimiter:
    return getattr(request.app.state, name)


def _check_limit(limiter: TokenBucketLimiter, keys: list[str], what: str) -> None:
    for key in keys:
        rate_limited(limiter, key, what)


@router.post(
    "/start",
    status_code=status.HTTP_201_CREATED,
    response_model=PairingStartedPublic,
    summary="Ask for a one-time pairing code (the meter calls this)",
    responses={429: {"model": Problem, "description": "Too many codes asked for from this address."}},
)
async def start(body: PairingStart, request: Request, conn: Conn, settings: Settings) -> PairingStartedPublic:
    address = client_address(request)
    limiter = _limiter(request, "pairing_start_limiter")
    _check_limit(limiter, [address], "pairing codes asked for from this address")
    limiter.failed(address)  # every code costs a token: codes are cheap to ask for, not free
    started = await pairing_codes.start_pairing(
        conn,
        machine_id=body.machine_id,
        hostname=body.hostname,
        meter_version=body.meter_version,
        requested_from=address,
    )
    code = display_code(started.code)
    return PairingStartedPublic(
        code=code,
        poll_secret=started.poll_secret,
        approve_url=f"{settings.public_url}/connect?code={code}",
        expires_at=started.expires_at,
        interval=POLL_INTERVAL_SECONDS,
    )


@router.post(
    "/poll",
    response_model=PairingPollPublic,
    summary="Wait for the person's decision; returns the device token exactly once",
    responses={
        404: {"model": Problem, "description": "No pairing has this poll secret."},
        410: {"description": "The code was denied, expired, or its token was already collected."},
    },
)
async def poll(body: PairingPoll, request: Request, settings: Settings) -> Response:
    cipher = fernet_for(settings.secret(), _CIPHER_PURPOSE)
    deadline = time.monotonic() + body.wait_seconds
    while True:
        # A connection per look, never held while waiting: a long-poll must not pin the pool.
        async with request.app.state.pg.connection() as conn:
            result = await pairing_codes.collect(conn, poll_secret=body.poll_secret, cipher=cipher)
        if result is None:
            return JSONResponse({"detail": "code not found"}, status_code=404)
        if result.status == "approved":
            assert result.workspace is not None
            return JSONResponse(
                PairingPollPublic(
                    status="approved",
                    token=result.token,
                    workspace_id=result.workspace.id,
                    workspace_slug=result.workspace.slug,
                    workspace_name=result.workspace.name,
                    device_id=result.device_id,
                    machine_id=result.machine_id,
                ).model_dump(mode="json"),
                headers={"Cache-Control": "no-store"},
            )
        if result.status != "pending":
            return JSONResponse({"status": result.status, "detail": _GONE[result.status]}, status_code=410)
        if time.monotonic() >= deadline or await request.is_disconnected():
            return JSONResponse({"status": "pending"})
        await asyncio.sleep(_RECHECK_SECONDS)


@router.post(
    "/cancel",
    response_model=PairingCancelledPublic,
    summary="Withdraw a pairing code the meter stopped waiting for (the meter calls this)",
    description="Authenticated by the poll secret only the meter holds. Idempotent. After it, opening or "
    "approving the code reads `code not found` and creates no device; a code approved a moment earlier "
    "whose token was never collected is cancelled too and its device revoked.",
    responses={404: {"model": Problem, "description": "No pairing has this poll secret."}},
)
async def cancel(body: PairingCancel, conn: Conn) -> Response:
    result = await pairing_codes.cancel(conn, poll_secret=body.poll_secret)
    if result is None:
        return JSONResponse({"detail": "code not found: no pairing has this poll secret"}, status_code=404)
    return JSONResponse(PairingCancelledPublic(status=result).model_dump(mode="json"))


_GONE = {
    "denied": "the pairing was denied in the browser",
    "expired": "the code expired before it was approved (codes last 10 minutes)",
    "consumed": "this pairing's token was already collected",
    "cancelled": "the meter cancelled this pairing (Ctrl-C or --timeout-seconds)",
}


async def _pairable_workspaces(conn: Connection, user_id: UUID) -> list:
    return [
        m
        for m in await workspaces.list_memberships(conn, user_id=user_id)
        if allows(m.role, Permission.PAIR_DEVICE)
    ]


def _guess_keys(request: Request, user_id: UUID) -> list[str]:
    return [f"user:{user_id}", f"ip:{client_address(request)}"]


async def _lookup(
    request: Request, conn: Connection, user_id: UUID, typed: str
) -> pairing_codes.PendingPairing | None:
    limiter = _limiter(request, "pairing_guess_limiter")
    keys = _guess_keys(request, user_id)
    _check_limit(limiter, keys, "wrong pairing codes")
    code = normalise_code(typed)
    found = await pairing_codes.find_pending(conn, code=code) if code else None
    if found is None:
        for key in keys:
            limiter.failed(key)
    return found


async def _code_not_found(request: Request, conn: Connection, user, choices: list, code: str) -> Response:
    return await render(
        request,
        "connect.html",
        conn=conn,
        user=user,
        pending=None,
        choices=choices,
        code=code,
        error=NOT_FOUND,
        status_code=404,
    )


@pages.get("/connect")
async def connect_page(request: Request, user: CurrentUser, conn: Conn, code: str = "") -> Response:
    choices = await _pairable_workspaces(conn, user.id)
    if not code:
        return await render(
            request, "connect.html", conn=conn, user=user, pending=None, choices=choices, code=""
        )
    found = await _lookup(request, conn, user.id, code)
    if found is None:
        return await _code_not_found(request, conn, user, choices, code)
    return await render(
        request,
        "connect.html",
        conn=conn,
        user=user,
        pending=found,
        choices=choices,
        code=display_code(found.code),
    )


@pages.post("/connect", dependencies=[CsrfProtected])
async def decide(
    request: Request,
    user: CurrentUser,
    conn: Conn,
    settings: Settings,
    code: Annotated[str, Form(max_length=32)],
    workspace: Annotated[str, Form(max_length=64)],
    decision: Annotated[Literal["approve", "deny"], Form()],
) -> Response:
    chosen = await workspaces.get_workspace(conn, slug=workspace)
    role = await workspaces.get_role(conn, workspace_id=chosen.id, user_id=user.id) if chosen else None
    if chosen is None or role is None or not allows(role, Permission.PAIR_DEVICE):
        raise Forbidden(
            f"you cannot pair machines into {workspace!r}: it needs a member role or higher there"
        )
    found = await _lookup(request, conn, user.id, code)
    choices = await _pairable_workspaces(conn, user.id)
    if found is None:
        return await _code_not_found(request, conn, user, choices, code)
    if decision == "deny":
        await pairing_codes.deny(conn, code=found.code, workspace=chosen, user=user)
        return await render(
            request,
            "connect_done.html",
            conn=conn,
            user=user,
            approved=False,
            pending=found,
            workspace=chosen,
        )
    device = await pairing_codes.approve(
        conn,
        code=found.code,
        workspace=chosen,
        user=user,
        cipher=fernet_for(settings.secret(), _CIPHER_PURPOSE),
    )
    if device is None:  # cancelled or expired between the lookup and the approval: nothing was created
        return await _code_not_found(request, conn, user, choices, code)
    return await render(
        request,
        "connect_done.html",
        conn=conn,
        user=user,
        approved=True,
        pending=found,
        workspace=chosen,
        device=device,
    )
