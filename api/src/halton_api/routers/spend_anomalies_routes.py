"""Runaway spend as JSON: the anomalies raised after each marts build (loops, and projects or devices far above
their own weekday-hour baseline), with their evidence and deliveries. The overview shows the open ones."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from halton_api.deps import ApiReader, Conn
from halton_api.store import spend_anomalies
from halton_api.store.spend_anomalies import SpendAnomalyPublic

router = APIRouter(prefix="/v1/{workspace}", tags=["budgets"])


@router.get(
    "/anomalies", response_model=list[SpendAnomalyPublic], summary="Runaway spend anomalies, with evidence"
)
async def list_anomalies(
    ctx: ApiReader, conn: Conn, status: Literal["open", "closed", "all"] = "open"
) -> list[SpendAnomalyPublic]:
    return await spend_anomalies.list_anomalies(
        conn, workspace_id=ctx.workspace.id, status=None if status == "all" else status
    )
