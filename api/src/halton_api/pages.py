"""Rendering server-side pages: one Jinja2 environment, the CSRF cookie, and the sidebar's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from halton_api import charts, csrf
from halton_api.dashboards import chart_views
from halton_api.dashboards.filters import PROVIDERS
from halton_api.dashboards.model_names import base_model
from halton_api.deps import SESSION_COOKIE, WorkspaceContext
from halton_api.models import UserPublic
from halton_api.store import Connection, workspaces

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.globals["format_money"] = lambda value: "—" if value is None else charts.money(value)
    templates.env.globals["format_cost"] = lambda value: "—" if value is None else charts.unit_money(value)
    # Every digit the warehouse keeps: only for a hover title (the audit trail), never as the figure itself.
    templates.env.globals["format_exact"] = lambda value: "" if value is None else charts.exact_money(value)
    templates.env.globals["format_int"] = lambda value: "—" if value is None else f"{int(value):,}"
    templates.env.globals["format_pct"] = lambda value, signed=False: (
        "—" if value is None else (f"{value:+.1f}%" if signed else f"{value:.1f}%")
    )
    templates.env.globals["format_qty"] = lambda value: "—" if value is None else charts.quantity(value)
    templates.env.globals["detail_pairs"] = detail_pairs
    # A list of model ids as people read it: dated snapshots under their model, each model once.
    templates.env.filters["fold_models"] = lambda ids: list(dict.fromkeys(base_model(m) for m in ids))
    templates.env.globals["chart"] = chart_views
    templates.env.globals["provider_label"] = lambda key: PROVIDERS.get(key, key)
    templates.env.globals["format_time"] = lambda value: (
        "never" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
    )
    return templates


def detail_pairs(details: Any, prefix: str = "") -> list[tuple[str, str]]:
    """An audit event's JSON details as readable key/value lines (nested keys dotted, lists comma-joined), so a
    page shows `role: admin`, not `{"role": "admin"}` with its escapes; the CSV and JSON keep the JSON."""
    if not isinstance(details, dict):
        return [(prefix or "value", _plain(details))] if details not in (None, {}, "") else []
    pairs: list[tuple[str, str]] = []
    for key, value in details.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            pairs += detail_pairs(value, name)
        else:
            pairs.append((name, _plain(value)))
    return pairs


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict):
        return "—"
    return str(value)


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    existing = request.cookies.get(csrf.COOKIE)
    if existing:
        return existing, False
    cached = getattr(request.state, "new_csrf_cookie", None)
    if cached is None:
        cached = csrf.new_cookie_value()
        request.state.new_csrf_cookie = cached
    return cached, True


async def render(
    request: Request,
    template: str,
    *,
    conn: Connection | None = None,
    user: UserPublic | None = None,
    ctx: WorkspaceContext | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render `template` with what every page needs: CSRF token, user, their workspaces, the current one."""
    settings = request.app.state.settings
    cookie_value, new_cookie = _csrf_cookie(request)
    # A session cookie set by this very response (sign-in) is not in the request yet.
    session = getattr(request.state, "new_session", None) or request.cookies.get(SESSION_COOKIE)
    user = user or (ctx.user if ctx else None)
    memberships = (
        await workspaces.list_memberships(conn, user_id=user.id) if conn is not None and user else []
    )
    response = request.app.state.templates.TemplateResponse(
        request,
        template,
        {
            "csrf_token": csrf.token_for(settings.secret(), cookie_value, session),
            "user": user,
            "ctx": ctx,
            "memberships": memberships,
            "notice": request.query_params.get("notice"),
            "public_url": settings.public_url,
            "meter_loopback_url": settings.meter_loopback_url,
            **context,
        },
        status_code=status_code,
        headers=headers,
    )
    if new_cookie:
        set_cookie(response, request, csrf.COOKIE, cookie_value, max_age=None)
    return response


def set_cookie(response: Any, request: Request, name: str, value: str, *, max_age: int | None) -> None:
    """Every cookie we set: HttpOnly, SameSite=Lax (a cross-site POST carries none), Secure when the public
    URL is https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )


def redirect(url: str, notice: str | None = None) -> RedirectResponse:
    """303 after a successful form post, optionally with a one-line notice for the next page."""
    if notice:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode({'notice': notice})}"
    return RedirectResponse(url, status_code=303)


def clear_cookie(response: Any, request: Request, name: str) -> None:
    """Expire a cookie with the attributes it was set with (a browser may keep a Secure one otherwise)."""
    response.delete_cookie(
        name, httponly=True, samesite="lax", secure=request.app.state.settings.secure_cookies, path="/"
    )
