"""Request-scoped things, as `Annotated` dependencies: settings, the database connection, who is asking.

Three kinds of caller:
- a person in a browser: the `halton_session` cookie (pages, and the JSON API for reads);
- a script: a workspace API key, `Authorization: Bearer hm_key_…` (JSON API, read only, one workspace);
- a meter: a device sync token, `Authorization: Bearer hm_sync_…` (ingestion and the daemon routes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from psycopg_pool import AsyncConnectionPool

from halton_api import csrf, tokens
from halton_api.catalogue_in_force import catalogue_for
from halton_api.cloud_settings import CloudSettings
from halton_api.dashboards.filters import RANGES, Filters
from halton_api.dashboards.reader import MartsReader
from halton_api.errors import Forbidden, NotFound
from halton_api.models import UserPublic, WorkspacePublic
from halton_api.ratelimit import AccountLock, CredentialKind, SharedBucketLimiter, TokenBucketLimiter
from halton_api.roles import Permission, Role, allows
from halton_api.store import Connection, api_keys, devices, users, workspaces
from halton_api.store.audit import Actor
from halton_api.store.devices import DeviceAuth
from halton_api.warehouse_access.batch_writer import WarehouseWriter
from halton_meter.catalogue import Catalogue

SESSION_COOKIE = "halton_session"


class SignInRequired(Exception):
    """A page needs a signed-in user; the app answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


# Dependencies that only read the app's state are `async def`: FastAPI runs a plain `def` dependency in a
# worker thread, a thread hop per request for an attribute read (bench/RESULTS.md, "Ingestion").
async def get_settings(request: Request) -> CloudSettings:
    return request.app.state.settings


Settings = Annotated[CloudSettings, Depends(get_settings)]


async def get_conn(request: Request) -> AsyncIterator[Connection]:
    """One connection and one transaction per request: committed before the response is sent."""
    async with request.app.state.pg.connection() as conn:
        yield conn


# scope="function": the transaction commits (or rolls back) before the response goes out, so a client
# never sees a success whose commit then failed.
Conn = Annotated[Connection, Depends(get_conn, scope="function")]


async def get_stream_conn(request: Request) -> AsyncIterator[Connection]:
    """A connection that lives until a streamed response has been sent (read-only exports)."""
    async with request.app.state.pg.connection() as conn:
        yield conn


StreamConn = Annotated[Connection, Depends(get_stream_conn)]


async def get_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pg


Pool = Annotated[AsyncConnectionPool, Depends(get_pool)]


async def get_writer(request: Request) -> WarehouseWriter:
    return request.app.state.writer


Writer = Annotated[WarehouseWriter, Depends(get_writer)]


async def get_bad_credentials(request: Request) -> dict[CredentialKind, TokenBucketLimiter]:
    return request.app.state.bad_credentials


BadCredentials = Annotated[dict[CredentialKind, SharedBucketLimiter], Depends(get_bad_credentials)]


async def get_account_lock(request: Request) -> AccountLock:
    return request.app.state.account_lock


SignInLock = Annotated[AccountLock, Depends(get_account_lock)]


async def current_time(request: Request) -> datetime:
    """Now, by the app's clock (`create_app(clock=…)`)."""
    return request.app.state.clock()


Now = Annotated[datetime, Depends(current_time)]


async def current_catalogue(request: Request, settings: Settings) -> Catalogue:
    """The catalogue the cloud prices and documents with (see `halton_api.catalogue_in_force`)."""
    return (await catalogue_for(request, settings)).catalogue


Prices = Annotated[Catalogue, Depends(current_catalogue)]


async def get_reader(request: Request) -> MartsReader:
    return request.app.state.reader


Reader = Annotated[MartsReader, Depends(get_reader)]

_Many = Query(description="Repeat the parameter (or separate values with commas) to choose several.")


async def rail_filters(
    request: Request,
    range_: Annotated[
        str | None, Query(alias="range", description=f"One of {', '.join(RANGES)} (default 30d).")
    ] = None,
    from_: Annotated[str | None, Query(alias="from", description="Custom range start, YYYY-MM-DD.")] = None,
    to: Annotated[str | None, Query(description="Custom range end (inclusive), YYYY-MM-DD.")] = None,
    provider: Annotated[list[str] | None, _Many] = None,
    model: Annotated[list[str] | None, _Many] = None,
    project: Annotated[list[str] | None, _Many] = None,
    device: Annotated[list[str] | None, _Many] = None,
    cost_center: Annotated[list[str] | None, _Many] = None,
) -> Filters:
    """The filter rail from the query string (the named parameters document it; the parsing is `Filters`')."""
    return Filters.from_query(request.query_params)


RailFilters = Annotated[Filters, Depends(rail_filters)]


def client_address(request: Request) -> str:
    """The peer's address: uvicorn replaces it from X-Forwarded-For only for the proxies the operator
    listed (`CloudSettings.forwarded_allow_ips`); nothing here reads a forwarded header itself."""
    return request.client.host if request.client else "unknown"


def rate_limited(limiter: TokenBucketLimiter, key: str, what: str) -> None:
    """429 with Retry-After when `key` has used up its bucket (`what` names what it did too often)."""
    wait = limiter.retry_after(key)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many {what}: wait {wait}s before trying again",
            headers={"Retry-After": str(wait)},
        )


def _presented(token: str) -> str:
    """The bucket of one presented token: part of its digest, so the table never holds a secret."""
    return f"token:{tokens.digest(token).hex()[:32]}"


async def count_bad(request: Request, limiter: SharedBucketLimiter, token: str, what: str) -> None:
    """Count a token that turned out bad against itself and its address; 429 once either is over its limit
    (the token's own first: a token that keeps failing is told so).
    It runs only after the lookup said "bad", so a valid token is never refused for the failures of others
    from the same address (a shared office, a NAT), and costs no write: the lookup is one indexed query by
    digest, the work any request costs, and guessing 178 random bits is hopeless anyway."""
    address_wait = await limiter.failed(f"ip:{client_address(request)}")
    token_wait = await limiter.failed(_presented(token))
    if token_wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed attempts with this {what}: wait {token_wait}s before trying again",
            headers={"Retry-After": str(token_wait)},
        )
    if address_wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many unknown or revoked {what}s from this address: wait {address_wait}s before trying "
            "again",
            headers={"Retry-After": str(address_wait)},
        )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# --- people --------------------------------------------------------------------------------------


async def current_user_optional(request: Request, conn: Conn) -> UserPublic | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await users.get_session_user(conn, token=token)


MaybeUser = Annotated[UserPublic | None, Depends(current_user_optional)]


async def current_user(request: Request, user: MaybeUser) -> UserPublic:
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return user


CurrentUser = Annotated[UserPublic, Depends(current_user)]


@dataclass(frozen=True)
class WorkspaceContext:
    """The workspace a page or API call is about, and the caller's standing in it."""

    workspace: WorkspacePublic
    role: Role
    actor: Actor
    user: UserPublic | None = None

    def can(self, permission: Permission | str) -> bool:
        return allows(self.role, Permission(permission))


async def _workspace(conn: Connection, slug: str) -> WorkspacePublic:
    found = await workspaces.get_workspace(conn, slug=slug)
    if found is None:
        raise NotFound(f"no workspace {slug!r}, or you are not a member of it")
    return found


async def workspace_member(
    workspace: Annotated[str, Path(description="The workspace's slug.", max_length=64)],
    user: CurrentUser,
    conn: Conn,
) -> WorkspaceContext:
    found = await _workspace(conn, workspace)
    role = await workspaces.get_role(conn, workspace_id=found.id, user_id=user.id)
    if role is None:
        raise NotFound(f"no workspace {workspace!r}, or you are not a member of it")
    return WorkspaceContext(workspace=found, role=role, actor=Actor.user(user.id, user.email), user=user)


Member = Annotated[WorkspaceContext, Depends(workspace_member)]


async def stream_member(
    workspace: Annotated[str, Path(description="The workspace's slug.", max_length=64)],
    request: Request,
    conn: StreamConn,
) -> WorkspaceContext:
    """`Member`, resolved on the streaming connection (for exports that read while they respond)."""
    token = request.cookies.get(SESSION_COOKIE)
    user = await users.get_session_user(conn, token=token) if token else None
    return await workspace_member(workspace, await current_user(request, user), conn)


StreamMember = Annotated[WorkspaceContext, Depends(stream_member)]


def _requires(permission: Permission):
    async def dependency(ctx: Member) -> WorkspaceContext:
        if not ctx.can(permission):
            raise Forbidden(
                f"your role in this workspace ({ctx.role}) cannot do this: "
                f"it needs {permission.value.replace('_', ' ')} rights; ask a workspace owner"
            )
        return ctx

    dependency.__name__ = f"requires_{permission.value}"
    return dependency


DeviceManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_DEVICES))]
MemberManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_MEMBERS))]
KeyManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_API_KEYS))]
ConfigManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_CONFIG))]
BillingManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_BILLING))]
LimitManager = Annotated[WorkspaceContext, Depends(_requires(Permission.MANAGE_LIMITS))]


async def csrf_protected(request: Request, settings: Settings) -> None:
    """Every form post carries a CSRF token bound to this browser and session (see `csrf`)."""
    submitted = request.headers.get(csrf.HEADER)
    if submitted is None:
        form = await request.form()
        value = form.get(csrf.FIELD)
        submitted = value if isinstance(value, str) else None
    if not csrf.verify(
        settings.secret(), request.cookies.get(csrf.COOKIE), request.cookies.get(SESSION_COOKIE), submitted
    ):
        raise Forbidden(
            "the form's security token is missing or out of date (CSRF check failed): reload the page and try again"
        )


CsrfProtected = Depends(csrf_protected)


# --- scripts: the JSON API -----------------------------------------------------------------------


async def api_reader(
    workspace: Annotated[str, Path(description="The workspace's slug.", max_length=64)],
    request: Request,
    conn: Conn,
    limits: BadCredentials,
) -> WorkspaceContext:
    """A workspace API key of this workspace, or a signed-in member (reads only)."""
    token = _bearer(request)
    if token is not None:
        key = await api_keys.authenticate(conn, key=token)
        if key is None:
            await count_bad(request, limits[CredentialKind.API_KEY], token, "API key")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="unknown or revoked API key: create one at /{workspace}/settings/advanced "
                "and send it as `Authorization: Bearer hm_key_…`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await _workspace(conn, workspace)
        if key.workspace_id != found.id:
            raise Forbidden(f"this API key belongs to another workspace, not {workspace!r}")
        return WorkspaceContext(
            workspace=found,
            role="viewer",
            actor=Actor("api_key", key.key_id, f"{key.name} ({key.key_prefix}…)"),
        )
    user = await current_user_optional(request, conn)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="sign in, or send a workspace API key as `Authorization: Bearer hm_key_…`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await workspace_member(workspace, user, conn)


ApiReader = Annotated[WorkspaceContext, Depends(api_reader)]


# --- meters: device sync tokens ------------------------------------------------------------------

_RESUME_HINT = "run `halton-meter cloud connect` to pair this machine again"


async def _device(request: Request, limits: dict[CredentialKind, SharedBucketLimiter]) -> DeviceAuth:
    token = _bearer(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing sync token: send `Authorization: Bearer hm_sync_…`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # A connection of its own, returned at once: ingestion must not pin one while the warehouse works.
    async with request.app.state.pg.connection() as conn:
        device = await devices.authenticate(conn, token=token)
    if device is None or device.status == "revoked":
        await count_bad(request, limits[CredentialKind.SYNC_TOKEN], token, "sync token")
    if device is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"unknown sync token: {_RESUME_HINT}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if device.status == "revoked":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"this machine's sync token was revoked: {_RESUME_HINT}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return device


async def active_device(request: Request, limits: BadCredentials) -> DeviceAuth:
    """The device whose token this is: 401 unknown or revoked, 403 removed from its workspace."""
    device = await _device(request, limits)
    if device.status == "removed":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=(
                f"a workspace admin removed this machine from {device.workspace.slug!r}; the token is still "
                "valid: ask them to reinstate it on the devices settings page, then run `halton-meter cloud "
                "resume` (do not run `cloud connect`, which would replace the token)"
            ),
        )
    return device


async def known_device(request: Request, limits: BadCredentials) -> DeviceAuth:
    """Like `active_device`, but a removed device is let through (it may still disconnect itself)."""
    return await _device(request, limits)


ActiveDevice = Annotated[DeviceAuth, Depends(active_device)]
KnownDevice = Annotated[DeviceAuth, Depends(known_device)]
