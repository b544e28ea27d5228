"""Projects, cost centers and budgets: the projects settings page and its JSON twin."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import ApiReader, ConfigManager, Conn, CsrfProtected, LimitManager, Member
from halton_api.errors import Invalid
from halton_api.form_ids import optional_id, required_id
from halton_api.models import BudgetPublic, CostCenterPublic, ProjectPublic, ProjectUpdate
from halton_api.pages import redirect, render
from halton_api.store import budget_alerts, hard_limits, projects

router = APIRouter(prefix="/v1/{workspace}", tags=["projects"])
pages = APIRouter(prefix="/{workspace}/settings", include_in_schema=False)


@router.get(
    "/projects", response_model=list[ProjectPublic], summary="Projects (registered from ingested slugs)"
)
async def list_projects(ctx: ApiReader, conn: Conn) -> list[ProjectPublic]:
    return await projects.list_projects(conn, workspace_id=ctx.workspace.id)


@router.get("/cost-centers", response_model=list[CostCenterPublic], summary="Cost centers")
async def list_cost_centers(ctx: ApiReader, conn: Conn) -> list[CostCenterPublic]:
    return await projects.list_cost_centers(conn, workspace_id=ctx.workspace.id)


@router.get(
    "/budgets",
    response_model=list[BudgetPublic],
    summary="Monthly budgets (workspace, per project and per cost center)",
)
async def list_budgets(ctx: ApiReader, conn: Conn) -> list[BudgetPublic]:
    return await projects.list_budgets(conn, workspace_id=ctx.workspace.id)


@pages.get("/projects")
async def projects_page(request: Request, ctx: Member, conn: Conn) -> Response:
    workspace_id = ctx.workspace.id
    return await render(
        request,
        "settings/projects.html",
        conn=conn,
        ctx=ctx,
        projects=await projects.list_projects(conn, workspace_id=workspace_id),
        cost_centers=await projects.list_cost_centers(conn, workspace_id=workspace_id),
        budgets=await projects.list_budgets(conn, workspace_id=workspace_id),
        alert_thresholds=await budget_alerts.thresholds_by_budget(conn, workspace_id=workspace_id),
    )


def _money(text: str, field: str) -> Decimal | None:
    text = text.strip().lstrip("$").replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"{field}: {text!r} is not an amount; write it like 1250.00") from None
    if (
        not value.is_finite()
        or value < 0
        or value != value.quantize(Decimal("0.01"))
        or value >= Decimal(10) ** 16
    ):
        raise Invalid(f"{field}: {text!r} must be a positive amount with at most two decimals")
    return value.quantize(Decimal("0.01"))


def _back(ctx: ConfigManager, notice: str) -> Response:
    return redirect(f"/{ctx.workspace.slug}/settings/projects", notice)


@pages.post("/projects/{project_id}", dependencies=[CsrfProtected])
async def update_project(
    project_id: UUID,
    ctx: ConfigManager,
    conn: Conn,
    name: Annotated[str, Form(min_length=1, max_length=256)],
    hourly_rate: Annotated[str, Form(max_length=32)] = "",
    cost_center_id: Annotated[str, Form(max_length=64)] = "",
    archived: Annotated[bool, Form()] = False,
) -> Response:
    rate = _money(hourly_rate, "hourly rate")
    center = optional_id(cost_center_id, "cost center", "cost centers")
    update = ProjectUpdate(
        name=name,
        archived=archived,
        hourly_rate=rate,
        clear_hourly_rate=rate is None,
        cost_center_id=center,
        clear_cost_center=center is None,
    )
    project = await projects.update_project(
        conn, workspace_id=ctx.workspace.id, project_id=project_id, update=update, actor=ctx.actor
    )
    return _back(ctx, f"project {project.slug} saved")


@pages.post("/cost-centers", dependencies=[CsrfProtected])
async def create_cost_center(
    ctx: ConfigManager, conn: Conn, name: Annotated[str, Form(min_length=1, max_length=128)]
) -> Response:
    center = await projects.create_cost_center(
        conn, workspace_id=ctx.workspace.id, name=name, actor=ctx.actor
    )
    return _back(ctx, f"cost center {center.name} created")


@pages.post("/budgets", dependencies=[CsrfProtected])
async def set_budget(
    ctx: ConfigManager,
    conn: Conn,
    monthly_amount: Annotated[str, Form(max_length=32)],
    project_id: Annotated[str, Form(max_length=64)] = "",
    cost_center_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    amount = _money(monthly_amount, "monthly amount")
    if amount is None:
        raise Invalid("monthly amount: enter an amount, e.g. 500.00")
    project = optional_id(project_id, "project", "projects")
    center = optional_id(cost_center_id, "cost center", "cost centers")
    budget = await projects.set_budget(
        conn,
        workspace_id=ctx.workspace.id,
        project_id=project,
        cost_center_id=center,
        monthly_amount=amount,
        actor=ctx.actor,
    )
    target = (
        f"cost center {budget.cost_center_name}"
        if budget.cost_center_id
        else budget.project_slug or "the workspace"
    )
    return _back(ctx, f"budget for {target} set to ${budget.monthly_amount:,.2f}")


@pages.post("/budgets/limit", dependencies=[CsrfProtected])
async def set_hard_limit(
    ctx: LimitManager,
    conn: Conn,
    budget_id: Annotated[str, Form(max_length=64)],
    limit: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Owner-only: a hard limit stops calls, which is a bigger decision than an alert."""
    budget = required_id(budget_id, "budget", "budgets")
    if limit not in ("", "on", "off"):
        raise Invalid(f"limit: {limit!r} is not on or off")
    on = limit == "on"
    slug = await hard_limits.set_hard_limit(
        conn, workspace_id=ctx.workspace.id, budget_id=budget, on=on, actor=ctx.actor
    )
    said = (
        "is now a hard limit: paired meters refuse its calls once it is reached"
        if on
        else "is no longer a hard limit"
    )
    return redirect(f"/{ctx.workspace.slug}/settings/projects", f"the budget of {slug} {said}")
