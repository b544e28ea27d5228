"""The projects list and the per-project view (with its recent requests and their CSV), and JSON twins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from halton_api.dashboards import priced_requests
from halton_api.dashboards.page_models import ProjectsPublic, ProjectViewPublic
from halton_api.dashboards.project import build_project, build_projects, project_requests
from halton_api.dashboards.view import open_view, render_view
from halton_api.deps import ApiReader, Conn, Member, RailFilters, Reader

router = APIRouter(prefix="/v1/{workspace}", tags=["dashboards"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

Slug = Annotated[str, "the project's slug"]
Grain = Annotated[str, Query(description="Spend over time by day, week or month.", max_length=8)]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page of requests.", max_length=200)
]
Search = Annotated[
    str | None,
    Query(description="A provider_request_id or request_uid to find among the requests.", max_length=256),
]


@router.get("/project-spend", response_model=ProjectsPublic, summary="Projects by spend in the period")
async def projects_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader
) -> ProjectsPublic:
    return await build_projects(await open_view(request, ctx, conn, filters, reader))


@router.get(
    "/projects/{slug}/view",
    response_model=ProjectViewPublic,
    summary="One project: spend, developers, models, requests",
)
async def project_json(
    request: Request, ctx: ApiReader, conn: Conn, filters: RailFilters, reader: Reader, slug: Slug,
    grain: Grain = "day", cursor: Cursor = None, q: Search = None,
) -> ProjectViewPublic:  # fmt: skip
    view = await open_view(request, ctx, conn, filters, reader)
    return await build_project(view, slug, grain=grain, cursor=cursor, search=q)


@pages.get("/projects")
async def projects_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader
) -> Response:
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(request, "dashboards/projects.html", view, conn, lambda: build_projects(view))


@pages.get("/projects/{slug}")
async def project_page(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader, slug: Slug,
    grain: Grain = "day", cursor: Cursor = None, q: Search = None,
) -> Response:  # fmt: skip
    view = await open_view(request, ctx, conn, filters, reader)
    return await render_view(
        request,
        "dashboards/project.html",
        view,
        conn,
        lambda: build_project(view, slug, grain=grain, cursor=cursor, search=q),
        slug=slug,
        grain=grain,
        hide_project=True,
    )


@pages.get("/projects/{slug}/requests.csv")
async def project_requests_csv(
    request: Request, ctx: Member, conn: Conn, filters: RailFilters, reader: Reader, slug: Slug,
    grain: Grain = "day", cursor: Cursor = None, q: Search = None,
) -> Response:  # fmt: skip
    """Exactly the rows the page shows for the same query string (same filters, page and search)."""
    view = await open_view(request, ctx, conn, filters, reader)
    table = await project_requests(view, slug, cursor=cursor, search=q)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return priced_requests.csv_response(
        table, f"{ctx.workspace.slug}-{slug.replace('/', '_')}-requests-{stamp}.csv"
    )
