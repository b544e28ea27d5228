"""Runaway spend as JSON: the anomalies raised after each marts build (loops, and projects or devices far above
their own weekday-hour baseline), with their evidence and deliveries. The overview shows the open ones; an owner
or config manager closes one from the overview's Runaway spend card or as JSON (signed in, with the CSRF header)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import BaseModel, Field

from halton_api.deps import ApiReader, ConfigManager, Conn, CsrfProtected
from halton_api.pages import redirect
from halton_api.store import spend_anomalies
from halton_api.store.spend_anomalies import SpendAnomalyPublic

router = APIRouter(prefix="/v1/{workspace}", tags=["budgets"])
pages = APIRouter(prefix="/{workspace}", include_in_schema=False)

NOTE_LIMIT = 1000


class AnomalyClose(BaseModel):
    note: Annotated[str, Field(max_length=NOTE_LIMIT)] = ""


@router.get(
    "/anomalies", response_model=list[SpendAnomalyPublic], summary="Runaway spend anomalies, with evidence"
)
async def list_anomalies(
    ctx: ApiReader, conn: Conn, status: Literal["open", "closed", "all"] = "open"
) -> list[SpendAnomalyPublic]:
    return await spend_anomalies.list_anomalies(
        conn, workspace_id=ctx.workspace.id, status=None if status == "all" else status
    )


@router.post(
    "/anomalies/{anomaly_id}/close",
    response_model=SpendAnomalyPublic,
    summary="Close a runaway spend anomaly (not raised again for the same window)",
    dependencies=[CsrfProtected],
)
async def close_anomaly_json(
    anomaly_id: UUID, body: AnomalyClose, ctx: ConfigManager, conn: Conn
) -> SpendAnomalyPublic:
    return await spend_anomalies.close_anomaly(
        conn, workspace_id=ctx.workspace.id, anomaly_id=anomaly_id, note=body.note, actor=ctx.actor
    )


@pages.post("/anomalies/{anomaly_id}/close", dependencies=[CsrfProtected])
async def close_anomaly(
    anomaly_id: UUID,
    ctx: ConfigManager,
    conn: Conn,
    note: Annotated[str, Form(max_length=NOTE_LIMIT)] = "",
) -> Response:
    closed = await spend_anomalies.close_anomaly(
        conn, workspace_id=ctx.workspace.id, anomaly_id=anomaly_id, note=note, actor=ctx.actor
    )
    return redirect(
        f"/{ctx.workspace.slug}/overview", f"anomaly on {closed.subject_kind} {closed.subject} closed"
    )
