"""`/healthz`: can this API reach both of its stores?"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from halton_api.models import Health, StoreHealth
from halton_api.warehouse_access.client_pool import ping

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


async def _postgres(request: Request) -> StoreHealth:
    started = time.perf_counter()
    try:
        async with (
            asyncio.timeout(CHECK_TIMEOUT),
            request.app.state.pg.connection(timeout=CHECK_TIMEOUT) as conn,
        ):
            await conn.execute("SELECT 1")
    except Exception as error:  # any failure means "down"; the message says which
        return StoreHealth(status="down", error=f"{type(error).__name__}: {error}"[:300])
    return StoreHealth(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def _warehouse(request: Request) -> StoreHealth:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            seconds = await request.app.state.writer.pool.run(ping)
    except Exception as error:  # any failure means "down"; the message says which
        return StoreHealth(status="down", error=f"{type(error).__name__}: {error}"[:300])
    return StoreHealth(status="ok", latency_ms=round(seconds * 1000, 2))


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "At least one store is down."}},
    summary="Check both stores",
)
async def healthz(request: Request) -> JSONResponse:
    postgres, warehouse = await asyncio.gather(_postgres(request), _warehouse(request))
    healthy = postgres.status == "ok" and warehouse.status == "ok"
    health = Health(status="ok" if healthy else "degraded", postgres=postgres, warehouse=warehouse)
    return JSONResponse(health.model_dump(mode="json"), status_code=200 if healthy else 503)
