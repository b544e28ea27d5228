"""The billing settings page: owners add, test and remove the OpenAI, Anthropic and xAI admin keys the
billing pulls use, and map the providers' own projects/workspaces to ours. Keys are sealed at rest and never
shown back: the page shows a fingerprint (prefix…last four)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from halton_api import connection_status
from halton_api.billing_checks import check_connection
from halton_api.cloud_settings import CloudSettings
from halton_api.deps import BillingManager, Conn, CsrfProtected, Member, Now, Settings, WorkspaceContext
from halton_api.errors import Invalid, NotFound
from halton_api.pages import redirect, render
from halton_api.store import Connection, projects, provider_connections
from halton_api.store.provider_connections import PROVIDER_LABELS
from halton_meter.secretbox import SecretBoxError

pages = APIRouter(prefix="/{workspace}/settings/billing", include_in_schema=False)
# Providers that bill by their own projects (OpenAI) or workspaces (Anthropic).
MAPPABLE = {"openai": "OpenAI project id", "anthropic": "Anthropic workspace id"}


def _provider(value: str) -> str:
    if value not in PROVIDER_LABELS:
        raise Invalid(f"unknown billing provider {value!r}: choose one of {', '.join(PROVIDER_LABELS)}")
    return value


async def _page(
    request: Request, ctx: WorkspaceContext, conn: Connection, now: datetime, **extra: Any
) -> Response:
    rows = await provider_connections.list_live(conn, workspace_id=ctx.workspace.id)
    broken = await provider_connections.unreadable(
        conn, workspace_id=ctx.workspace.id, secret=request.app.state.settings.secret()
    )
    connections = []
    for row in rows:
        works, sentence = connection_status.describe(row, now, readable=row["provider"] not in broken)
        connections.append(
            {**row, "label": PROVIDER_LABELS[row["provider"]], "fingerprint": provider_connections.fingerprint(row),
             "works": works, "status": sentence}
        )  # fmt: skip
    return await render(
        request, "settings/billing.html", conn=conn, ctx=ctx,
        connections=connections, providers=PROVIDER_LABELS, mappable=MAPPABLE,
        project_map=await provider_connections.list_project_map(conn, workspace_id=ctx.workspace.id),
        projects=await projects.list_projects(conn, workspace_id=ctx.workspace.id), **extra,
    )  # fmt: skip


@pages.get("")
async def billing_page(request: Request, ctx: Member, conn: Conn, now: Now) -> Response:
    return await _page(request, ctx, conn, now)


async def _test(
    settings: CloudSettings, conn: Connection, ctx: WorkspaceContext, provider: str, now: datetime
) -> str | None:
    try:
        stored = await provider_connections.credentials(
            conn, workspace_id=ctx.workspace.id, provider=provider, secret=settings.secret()
        )
    except SecretBoxError:
        # Nothing to test with: say so where the test's outcome shows, so the owner re-enters the key.
        error: str | None = connection_status.UNREADABLE
    else:
        if stored is None:
            raise NotFound(
                f"no {PROVIDER_LABELS[provider]} connection in this workspace: add its admin key first"
            )
        error = await run_in_threadpool(
            check_connection, settings, provider, stored[0], stored[1], now.date()
        )
    await provider_connections.record_test(
        conn, workspace_id=ctx.workspace.id, provider=provider, error=error, actor=ctx.actor
    )
    return error


@pages.post("/connections", dependencies=[CsrfProtected])
async def add_connection(
    request: Request, ctx: BillingManager, conn: Conn, settings: Settings, now: Now,
    provider: Annotated[str, Form()], admin_key: Annotated[str, Form(min_length=1, max_length=512)],
    team_id: Annotated[str, Form(max_length=128)] = "",
) -> Response:  # fmt: skip
    provider = _provider(provider)
    key, team = admin_key.strip(), team_id.strip() or None
    if len(key) < 12 or any(c.isspace() for c in key):
        raise Invalid("the admin key looks wrong: paste the whole key, one word, as the provider shows it")
    if provider == "xai" and team is None:
        raise Invalid("an xAI management key needs its team id: copy it from the xAI console's team settings")
    await provider_connections.add(
        conn, workspace_id=ctx.workspace.id, provider=provider, admin_key=key, team_id=team,
        secret=settings.secret(), actor=ctx.actor,
    )  # fmt: skip
    # Test at once, so a wrong key is named while the owner is still on the page.
    error = await _test(settings, conn, ctx, provider, now)
    label = PROVIDER_LABELS[provider]
    return redirect(
        f"/{ctx.workspace.slug}/settings/billing",
        f"{label} connection added and working"
        if error is None
        else f"{label} connection added, but the test failed",
    )


@pages.post("/connections/{provider}/test", dependencies=[CsrfProtected])
async def test_connection(
    provider: str, ctx: BillingManager, conn: Conn, settings: Settings, now: Now
) -> Response:
    provider = _provider(provider)
    error = await _test(settings, conn, ctx, provider, now)
    label = PROVIDER_LABELS[provider]
    return redirect(
        f"/{ctx.workspace.slug}/settings/billing",
        f"{label} connection works" if error is None else f"{label} connection test failed",
    )


@pages.post("/connections/{provider}/remove", dependencies=[CsrfProtected])
async def remove_connection(provider: str, ctx: BillingManager, conn: Conn) -> Response:
    provider = _provider(provider)
    removed = await provider_connections.remove(
        conn, workspace_id=ctx.workspace.id, provider=provider, actor=ctx.actor
    )
    label = PROVIDER_LABELS[provider]
    return redirect(
        f"/{ctx.workspace.slug}/settings/billing",
        f"{label} connection removed: no more pulls with its key"
        if removed else f"There was no {label} connection to remove",
    )  # fmt: skip


@pages.post("/project-map", dependencies=[CsrfProtected])
async def map_project(
    ctx: BillingManager, conn: Conn, provider: Annotated[str, Form()],
    provider_project: Annotated[str, Form(min_length=1, max_length=256)], project: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    provider = _provider(provider)
    if provider not in MAPPABLE:
        raise Invalid(f"{PROVIDER_LABELS[provider]} does not bill by its own projects: nothing to map")
    project_id = None
    if project:
        known = {p.slug: p.id for p in await projects.list_projects(conn, workspace_id=ctx.workspace.id)}
        if project not in known:
            raise Invalid(f"no project {project!r} in this workspace: pick one from the list")
        project_id = known[project]
    await provider_connections.map_project(
        conn, workspace_id=ctx.workspace.id, provider=provider, provider_project=provider_project.strip(),
        project_id=project_id, actor=ctx.actor,
    )  # fmt: skip
    return redirect(
        f"/{ctx.workspace.slug}/settings/billing",
        f"{PROVIDER_LABELS[provider]} {provider_project.strip()} → {project}" if project_id
        else f"{PROVIDER_LABELS[provider]} {provider_project.strip()} no longer mapped",
    )  # fmt: skip
