"""Sign up, sign in, sign out. Sessions are server-side rows; the cookie holds only a random token.

Guessing is held three ways: failed sign-ins per address (buckets in PostgreSQL, `ratelimit`), failed sign-ins
per account from any address (a lock with a growing wait, in PostgreSQL, `store.sign_in_failures`), and
sign-ups per address. Sign-in answers "wrong email or password" and locks an address without an account
just like one with. Sign-up does say when an address already has an account: without an email round trip
there is no other honest answer (the product sends no mail), so asking is what is slowed down instead.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from halton_api import passwords
from halton_api.deps import (
    SESSION_COOKIE,
    BadCredentials,
    Conn,
    CsrfProtected,
    MaybeUser,
    Now,
    Pool,
    Settings,
    SignInLock,
    client_address,
)
from halton_api.errors import Conflict
from halton_api.models import UserPublic
from halton_api.pages import clear_cookie, redirect, render, set_cookie
from halton_api.ratelimit import CredentialKind, TokenBucketLimiter
from halton_api.store import Connection, invitations, sign_in_failures, users, workspaces

router = APIRouter(tags=["auth"], include_in_schema=False)

# No spaces or control characters (PostgreSQL text cannot even hold a NUL): never an account's address.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_NUL = "\x00"


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site paths: never redirect a user to another host after sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


async def _home(conn: Connection, user: UserPublic) -> str:
    memberships = await workspaces.list_memberships(conn, user_id=user.id)
    return f"/{memberships[0].workspace.slug}/overview" if memberships else "/workspaces"


async def _start_session(
    request: Request, conn: Connection, user: UserPublic, settings, target: str
) -> Response:
    token = await users.create_session(
        conn,
        user_id=user.id,
        ttl=timedelta(days=settings.session_ttl_days),
        user_agent=request.headers.get("user-agent", ""),
    )
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token, max_age=settings.session_ttl_days * 86400)
    return response


@router.get("/")
async def root(user: MaybeUser, conn: Conn) -> Response:
    if user is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse(await _home(conn, user), status_code=303)


@router.get("/signup")
async def signup_page(request: Request, user: MaybeUser, invite: str | None = None) -> Response:
    return await render(request, "auth/signup.html", user=user, invite=invite or "", form={})


def _signup_limiter(request: Request) -> TokenBucketLimiter:
    return request.app.state.signup_limiter


@router.post("/signup", dependencies=[CsrfProtected])
async def signup(
    request: Request,
    conn: Conn,
    settings: Settings,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=passwords.MAX_LENGTH)],
    name: Annotated[str, Form(max_length=128)] = "",
    workspace_name: Annotated[str, Form(max_length=128)] = "",
    invite: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    email = email.strip()
    form = {"email": email, "name": name, "workspace_name": workspace_name}
    address = f"ip:{client_address(request)}"
    limiter = _signup_limiter(request)
    wait = limiter.retry_after(address)
    if wait is not None:
        return await render(
            request,
            "auth/signup.html",
            invite=invite,
            form=form,
            error=f"too many sign-ups from this address: wait {wait}s and try again",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    problem = None if _EMAIL.match(email) else "enter a valid email address"
    if _NUL in name + workspace_name:
        problem = problem or "names cannot contain a NUL character"
    problem = problem or passwords.problem(password)
    if problem:
        return await render(
            request, "auth/signup.html", invite=invite, form=form, error=problem, status_code=400
        )
    # Every complete sign-up counts, made or refused as taken: both are what a bulk sign-up or a probe
    # for who has an account would send.
    limiter.failed(address)
    password_hash = await anyio.to_thread.run_sync(passwords.hash_password, password)
    try:
        user = await users.create_user(conn, email=email, name=name, password_hash=password_hash)
    except Conflict as conflict:
        return await render(
            request, "auth/signup.html", invite=invite, form=form, error=conflict.detail, status_code=409
        )
    found = await invitations.find_invitation(conn, token=invite) if invite else None
    if found and found.invitation.state == "pending" and found.invitation.email.lower() == email.lower():
        # Invited people join the inviting workspace rather than getting an empty one of their own.
        workspace = await invitations.accept_invitation(conn, token=invite, user=user)
    else:
        label = workspace_name.strip() or f"{(name.strip() or email.split('@')[0])}'s workspace"
        workspace = await workspaces.create_workspace(conn, name=label, owner=user)
    return await _start_session(request, conn, user, settings, f"/{workspace.slug}/overview")


@router.get("/signin")
async def signin_page(request: Request, user: MaybeUser, next: str | None = None) -> Response:
    return await render(request, "auth/signin.html", user=user, next=safe_next(next, ""), form={})


@router.post("/signin", dependencies=[CsrfProtected])
async def signin(
    request: Request,
    conn: Conn,
    pool: Pool,
    settings: Settings,
    limits: BadCredentials,
    lock: SignInLock,
    now: Now,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=passwords.MAX_LENGTH)],
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    async def answer(error: str, status_code: int, wait: int | None = None) -> Response:
        return await render(
            request,
            "auth/signin.html",
            next=safe_next(next, ""),
            form={"email": email},
            error=error,
            status_code=status_code,
            headers={"Retry-After": str(wait)} if wait is not None else None,
        )

    if not _EMAIL.match(email.strip()):  # no account has such an address: nothing was guessed
        return await answer("enter a valid email address", 400)
    address = f"ip:{client_address(request)}"
    limiter = limits[CredentialKind.PASSWORD]
    wait = await limiter.retry_after(address)
    if wait is not None:
        # Refused before the password is looked at, right or wrong: else spraying one password over
        # many accounts from one address would go on.
        return await answer(
            f"too many failed sign-ins from this address: wait {wait}s and try again", 429, wait
        )
    # Committed before the password is checked (see sign_in_failures): a correct one clears it below.
    async with pool.connection() as own:
        attempt = await sign_in_failures.begin(own, email=email, now=now, policy=lock)
    if not attempt.allowed:
        assert attempt.locked_until is not None
        wait = _seconds_until(attempt.locked_until, now)
        return await answer(
            f"too many failed sign-ins to this account ({attempt.failures} in a row): sign-in to it is paused "
            f"for {wait}s, whatever the password; each further failure doubles the wait, up to "
            f"{_duration(lock.longest)}. Wait, then sign in: a correct password clears it",
            429,
            wait,
        )
    credentials = await users.get_credentials(conn, email=email)
    stored = credentials.password_hash if credentials else passwords.DUMMY_HASH
    valid = await anyio.to_thread.run_sync(passwords.verify_password, stored, password)
    if credentials is None or not valid:
        await limiter.failed(address)
        error = "wrong email or password"
        if attempt.locked_until is not None:
            error += (
                f"; after {attempt.failures} failed sign-ins in a row, this account can be tried again in "
                f"{_seconds_until(attempt.locked_until, now)}s"
            )
        return await answer(error, 400)
    await sign_in_failures.clear(conn, email=email)
    if passwords.needs_rehash(credentials.password_hash):
        new_hash = await anyio.to_thread.run_sync(passwords.hash_password, password)
        await users.set_password_hash(conn, user_id=credentials.user.id, password_hash=new_hash)
    target = safe_next(next, await _home(conn, credentials.user))
    return await _start_session(request, conn, credentials.user, settings, target)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 and seconds >= 120 else f"{seconds}s"


@router.post("/signout", dependencies=[CsrfProtected])
async def signout(request: Request, conn: Conn) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await users.delete_session(conn, token=token)
    response = redirect("/signin", "signed out")
    clear_cookie(response, request, SESSION_COOKIE)
    return response
