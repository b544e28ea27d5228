"""Sign up, sign in, sign out. Sessions are server-side rows; the cookie holds only a random token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from halton_api import passwords
from halton_api.deps import (
    SESSION_COOKIE,
    BadAuthLimiter,
    Conn,
    CsrfProtected,
    MaybeUser,
    Settings,
    client_address,
)
from halton_api.errors import Conflict
from halton_api.models import UserPublic
from halton_api.pages import clear_cookie, redirect, render, set_cookie
from halton_api.store import Connection, invitations, users, workspaces

router = APIRouter(tags=["auth"], include_in_schema=False)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    problem = None if _EMAIL.match(email) else "enter a valid email address"
    problem = problem or passwords.problem(password)
    if problem:
        return await render(
            request, "auth/signup.html", invite=invite, form=form, error=problem, status_code=400
        )
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
    settings: Settings,
    limiter: BadAuthLimiter,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=passwords.MAX_LENGTH)],
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    address = client_address(request)
    wait = limiter.retry_after(address)
    if wait is not None:
        return await render(
            request,
            "auth/signin.html",
            next=safe_next(next, ""),
            form={"email": email},
            error=f"too many failed sign-ins from this address: wait {wait}s and try again",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    credentials = await users.get_credentials(conn, email=email)
    stored = credentials.password_hash if credentials else passwords.DUMMY_HASH
    valid = await anyio.to_thread.run_sync(passwords.verify_password, stored, password)
    if credentials is None or not valid:
        limiter.failed(address)
        return await render(
            request,
            "auth/signin.html",
            next=safe_next(next, ""),
            form={"email": email},
            error="wrong email or password",
            status_code=400,
        )
    if passwords.needs_rehash(credentials.password_hash):
        new_hash = await anyio.to_thread.run_sync(passwords.hash_password, password)
        await users.set_password_hash(conn, user_id=credentials.user.id, password_hash=new_hash)
    target = safe_next(next, await _home(conn, credentials.user))
    return await _start_session(request, conn, credentials.user, settings, target)


@router.post("/signout", dependencies=[CsrfProtected])
async def signout(request: Request, conn: Conn) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await users.delete_session(conn, token=token)
    response = redirect("/signin", "signed out")
    clear_cookie(response, request, SESSION_COOKIE)
    return response
