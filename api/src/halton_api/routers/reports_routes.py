"""The signed PDF reports: a project's period report and the executive summary.

A report is rendered only for a request that cannot be forged from another site:
- in a browser, "Generate PDF" is a form that POSTs to `/{workspace}/reports/new?<rail>` with its CSRF token;
  that starts a report job and goes to its progress page, which polls `GET /v1/{workspace}/reports/{id}` and
  then downloads `/{workspace}/reports/{id}.pdf`. A GET of `/reports/new` only shows that form: the session
  cookie is SameSite=Lax, so a link on another site would carry it, and a link must not start work;
- for scripts, `GET /{workspace}/projects/{slug}/report.pdf?<rail>` and `GET /{workspace}/executive.pdf?<rail>`
  with a workspace API key (`Authorization: Bearer hm_key_…`, which no other site can make a browser send)
  answer with the PDF when it is ready. They run in the same slots as the jobs (429 when all are busy). The
  same GET with only a session cookie is sent to the form.
Either way the report is signed and `report.signed` is audited with the SHA-256 of the bytes served.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from halton_api.dashboards import spend
from halton_api.dashboards.view import View, open_view
from halton_api.deps import (
    ApiReader,
    BadCredentials,
    Conn,
    CsrfProtected,
    Member,
    RailFilters,
    Reader,
    WorkspaceContext,
    api_reader,
    current_user,
    current_user_optional,
    workspace_member,
)
from halton_api.errors import Invalid, NotFound
from halton_api.pages import redirect, render
from halton_api.pdf import reports
from halton_api.pdf.jobs import ReportJob, ReportJobs, TooManyReportJobs
from halton_api.store import Connection, branding

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/{workspace}/reports", tags=["reports"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Kind = Literal["project", "executive"]
Grain = Annotated[
    str | None, Query(description="Spend over time by day, week or month (default: by the period's length).")
]
JobId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
RETRY_AFTER = 5


async def report_reader(
    workspace: Annotated[str, Path(description="The workspace's slug.", max_length=64)],
    request: Request,
    conn: Conn,
    limits: BadCredentials,
) -> WorkspaceContext:
    """A script with a workspace API key, or a signed-in member (a browser without a session is sent to
    sign in, as on any page)."""
    if request.headers.get("authorization"):
        return await api_reader(workspace, request, conn, limits)
    user = await current_user(request, await current_user_optional(request, conn))
    return await workspace_member(workspace, user, conn)


def _jobs(request: Request) -> ReportJobs:
    return request.app.state.report_jobs


def _pdf_response(pdf: bytes, filename: str) -> Response:
    # The name holds a slug from the URL: keep it to characters that need no quoting in a header.
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # A report carries the workspace's figures: no shared cache may keep it.
            "Cache-Control": "private, no-store",
        },
    )


async def _prepare(
    request: Request, ctx: WorkspaceContext, conn: Connection, filters, reader, kind: Kind, slug: str | None,
    grain: str | None,
) -> tuple[View, Any, str]:  # fmt: skip
    """The view, a `build()` for the report, and its file name; everything that needs the request's
    connection is read here, so the build can run after the request is over."""
    if grain is not None and grain not in ("day", "week", "month"):
        raise Invalid(f"grain: {grain!r} is not one of day, week, month")
    view = await open_view(request, ctx, conn, filters, reader)
    logo = await branding.get_logo(conn, workspace_id=ctx.workspace.id)
    env = request.app.state.templates.env
    if kind == "project":
        if not slug:
            raise Invalid("slug: a project report needs the project's slug")
        if view.facts.project(slug) is None and not await view.reader.run(
            lambda client, m: spend.has_project(client, m, ctx.workspace.id, slug)
        ):
            raise NotFound(f"no project {slug!r} in this workspace")
        return (
            view,
            lambda: reports.project_report(env, view, slug, logo=logo, grain=grain),
            reports.project_filename(view, slug),
        )
    return view, lambda: reports.executive_report(env, view, logo=logo), reports.executive_filename(view)


ReportReader = Annotated[WorkspaceContext, Depends(report_reader)]


async def _direct(
    request: Request, ctx: WorkspaceContext, conn: Connection, filters, reader, kind: Kind, slug: str | None,
    grain: str | None,
) -> Response:  # fmt: skip
    if ctx.actor.type != "api_key":
        # A browser, signed in by its cookie (which a link on another site carries too, as it would cached
        # Basic credentials of a proxy in front of us): the form, not the work.
        return RedirectResponse(_start_page(ctx, filters, kind, slug, grain), status_code=303)
    view, build, filename = await _prepare(request, ctx, conn, filters, reader, kind, slug, grain)
    pool = request.app.state.pg

    async def work(job: ReportJob) -> bytes:
        return await reports.render_and_sign(build, view=view, pool=pool, actor=ctx.actor, job=job)

    try:
        pdf = await _jobs(request).run(workspace_id=ctx.workspace.id, filename=filename, work=work)
    except TooManyReportJobs as exc:
        raise _busy(exc) from None
    return _pdf_response(pdf, filename)


def _start_page(ctx: WorkspaceContext, filters, kind: Kind, slug: str | None, grain: str | None) -> str:
    """`/{workspace}/reports/new` for this report: the page whose form starts it."""
    extra = [("kind", kind), *([("slug", slug)] if slug else []), *([("grain", grain)] if grain else [])]
    return f"/{ctx.workspace.slug}/reports/new?{urlencode(filters.pairs(with_extra=False) + extra)}"


def _busy(exc: TooManyReportJobs) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, detail=str(exc), headers={"Retry-After": str(RETRY_AFTER)}
    )


@pages.get("/projects/{slug}/report.pdf")
async def project_report_pdf(
    request: Request, ctx: ReportReader, conn: Conn, filters: RailFilters, reader: Reader, slug: str,
    grain: Grain = None,
) -> Response:  # fmt: skip
    """The project's signed period report for the rail's period and filters, when it is ready (with an API
    key; a browser is sent to the page that starts one)."""
    return await _direct(request, ctx, conn, filters, reader, "project", slug, grain)


@pages.get("/executive.pdf")
async def executive_pdf(
    request: Request, ctx: ReportReader, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    """The signed executive summary, when it is ready (with an API key; a browser is sent to the page that
    starts one)."""
    return await _direct(request, ctx, conn, filters, reader, "executive", None, None)


@pages.get("/reports/new")
async def new_report_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader,
    kind: Annotated[Kind, Query(description="project or executive")],
    slug: Annotated[str | None, Query(max_length=128)] = None, grain: Grain = None,
) -> Response:  # fmt: skip
    """What the report will hold, and the button (a POST with the CSRF token) that starts it."""
    view, _, filename = await _prepare(request, ctx, conn, filters, reader, kind, slug, grain)
    return await render(
        request, "reports/new.html", conn=conn, ctx=ctx, filters=filters, view=view, kind=kind, slug=slug,
        grain=grain, filename=filename,
    )  # fmt: skip


@pages.post("/reports/new", dependencies=[CsrfProtected])
async def new_report(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader,
    kind: Annotated[Kind, Form(description="project or executive")],
    slug: Annotated[str | None, Form(max_length=128)] = None, grain: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:  # fmt: skip
    """Start generating a report in the background and go to its progress page."""
    view, build, filename = await _prepare(
        request, ctx, conn, filters, reader, kind, slug or None, grain or None
    )
    pool = request.app.state.pg

    async def work(job: ReportJob) -> bytes:
        return await reports.render_and_sign(build, view=view, pool=pool, actor=ctx.actor, job=job)

    try:
        job = await _jobs(request).start(workspace_id=ctx.workspace.id, filename=filename, work=work)
    except TooManyReportJobs as exc:
        raise _busy(exc) from None
    log.info("report job %s started for workspace %s: %s", job.id, ctx.workspace.slug, filename)
    return redirect(f"/{ctx.workspace.slug}/reports/{job.id}")


async def _job(request: Request, ctx: WorkspaceContext, job_id: str) -> ReportJob:
    job = await _jobs(request).get(job_id, workspace_id=ctx.workspace.id)
    if job is None:
        # The same answer for another workspace's job as for none at all: ids are not to be probed.
        raise NotFound(f"no report job {job_id!r} in this workspace (finished jobs are kept 15 minutes)")
    return job


# Before `/reports/{job_id}`, which would otherwise take "….pdf" as a job id.
@pages.get("/reports/{job_id}.pdf")
async def report_job_pdf(request: Request, ctx: Member, job_id: JobId) -> Response:
    job = await _job(request, ctx, job_id)
    if job.state == "failed":
        raise Invalid(job.error or "the report could not be generated")
    pdf = await _jobs(request).pdf(job_id, workspace_id=ctx.workspace.id) if job.state == "done" else None
    if pdf is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="the report is still being generated: wait for its progress page to finish",
            headers={"Retry-After": "1"},
        )
    return _pdf_response(pdf, job.filename)


@pages.get("/reports/{job_id}")
async def report_job_page(request: Request, ctx: Member, conn: Conn, job_id: JobId) -> Response:
    job = await _job(request, ctx, job_id)
    return await render(
        request,
        "reports/progress.html",
        conn=conn,
        ctx=ctx,
        job=reports.job_public(job, workspace_slug=ctx.workspace.slug),
    )


@router.get("/{job_id}", summary="A report job's progress (state, stage, render step, pages laid out)")
async def report_job_json(request: Request, ctx: ApiReader, job_id: JobId) -> dict[str, Any]:
    return dict(reports.job_public(await _job(request, ctx, job_id), workspace_slug=ctx.workspace.slug))
