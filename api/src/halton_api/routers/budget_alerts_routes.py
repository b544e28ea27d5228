"""Budget alerts: thresholds per budget (set on the Projects & budgets page), the channels alerts go to
(Settings: Alerts, secrets sealed at rest), and the alerts raised with each delivery's status, as a page and
as JSON. The pipelines raise and deliver the alerts (halton_pipelines.alerts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from halton_api.deps import ApiReader, ConfigManager, Conn, CsrfProtected, Member, Settings
from halton_api.errors import Invalid
from halton_api.form_ids import required_id
from halton_api.pages import redirect, render
from halton_api.store import budget_alerts
from halton_api.store.budget_alerts import BudgetAlertPublic

router = APIRouter(prefix="/v1/{workspace}", tags=["budgets"])
pages = APIRouter(prefix="/{workspace}/settings", include_in_schema=False)


@router.get(
    "/budget-alerts", response_model=list[BudgetAlertPublic], summary="Budget alerts raised, with deliveries"
)
async def list_alerts(ctx: ApiReader, conn: Conn) -> list[BudgetAlertPublic]:
    return await budget_alerts.list_alerts(conn, workspace_id=ctx.workspace.id)


@pages.get("/alerts")
async def alerts_page(request: Request, ctx: Member, conn: Conn) -> Response:
    workspace_id = ctx.workspace.id
    return await render(
        request,
        "settings/alerts.html",
        conn=conn,
        ctx=ctx,
        channels=await budget_alerts.channels(conn, workspace_id=workspace_id),
        alerts=await budget_alerts.list_alerts(conn, workspace_id=workspace_id),
    )


@pages.post("/alerts", dependencies=[CsrfProtected])
async def save_channels(
    ctx: ConfigManager, conn: Conn, settings: Settings,
    webhook_url: Annotated[str, Form(max_length=2048)] = "",
    webhook_secret: Annotated[str, Form(max_length=256)] = "",
    smtp_host: Annotated[str, Form(max_length=255)] = "",
    smtp_port: Annotated[str, Form(max_length=5)] = "",
    smtp_starttls: Annotated[str, Form(max_length=8)] = "",
    smtp_username: Annotated[str, Form(max_length=255)] = "",
    smtp_password: Annotated[str, Form(max_length=256)] = "",
    smtp_from: Annotated[str, Form(max_length=255)] = "",
    smtp_to: Annotated[str, Form(max_length=2048)] = "",
) -> Response:  # fmt: skip
    port = None
    if smtp_port.strip():
        if not smtp_port.strip().isdigit() or not 1 <= int(smtp_port) <= 65535:
            raise Invalid(f"SMTP port: {smtp_port!r} is not a port number (1 to 65535)")
        port = int(smtp_port)
    await budget_alerts.save_channels(
        conn, workspace_id=ctx.workspace.id, secret=settings.secret(), actor=ctx.actor, webhook_url=webhook_url,
        webhook_secret=webhook_secret, smtp_host=smtp_host, smtp_port=port, smtp_starttls=bool(smtp_starttls),
        smtp_username=smtp_username, smtp_password=smtp_password, smtp_from=smtp_from, smtp_to=smtp_to,
    )  # fmt: skip
    return redirect(f"/{ctx.workspace.slug}/settings/alerts", "alert channels saved")


@pages.post("/budgets/alerts", dependencies=[CsrfProtected])
async def set_thresholds(
    ctx: ConfigManager,
    conn: Conn,
    budget_id: Annotated[str, Form(max_length=64)],
    thresholds: Annotated[str, Form(max_length=200)] = "",
    forecast: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    budget = required_id(budget_id, "budget", "budgets")
    chosen = budget_alerts.parse_thresholds(thresholds)
    await budget_alerts.set_thresholds(
        conn, workspace_id=ctx.workspace.id, budget_id=budget, thresholds=chosen, forecast=bool(forecast),
        actor=ctx.actor,
    )  # fmt: skip
    said = ", ".join(f"{t}%" for t in chosen) or "no threshold"
    return redirect(f"/{ctx.workspace.slug}/settings/projects", f"budget alerts at {said}")
