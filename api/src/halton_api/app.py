"""The FastAPI application: `create_app(settings)`; in production `halton-cloud serve`, which runs
`app_from_env` under uvicorn with the options of `CloudSettings.uvicorn_options()` (forwarded headers only from
listed proxies; header and body read timeouts from `halton_api.slow_clients`)."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

import anyio
import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from halton_api import postgres, security_headers, slow_clients
from halton_api.catalogue_in_force import CatalogueCache
from halton_api.cloud_settings import CloudSettings
from halton_api.dashboards.reader import MartsReader
from halton_api.deps import SignInRequired
from halton_api.errors import DomainError
from halton_api.ingest_window import IngestWindow
from halton_api.pages import STATIC_DIR, make_templates, render
from halton_api.pdf.jobs import ReportJobs
from halton_api.ratelimit import AccountLock, TokenBucketLimiter, bad_credential_limiters
from halton_api.routers import (
    api_keys_routes,
    audit_routes,
    auth_routes,
    billing_connections_routes,
    branches_routes,
    branding_routes,
    budget_alerts_routes,
    captured_requests_routes,
    clusters_routes,
    cost_centers_routes,
    devices_routes,
    executive_routes,
    export_settings_routes,
    health_routes,
    ingest_routes,
    invitations_routes,
    members_routes,
    methodology_routes,
    optimization_routes,
    overview_routes,
    paired_meter_routes,
    pairing_routes,
    project_view_routes,
    projects_routes,
    rates_routes,
    reconciliation_routes,
    reports_routes,
    spend_anomalies_routes,
    traces_routes,
    verify_routes,
    workspaces_routes,
)
from halton_api.security_headers import SecurityHeaders
from halton_api.store import devices, projects
from halton_api.warehouse_access.batch_writer import WarehouseWriter
from halton_api.warehouse_access.client_pool import WarehouseError, WarehousePool
from halton_meter.protocol import BatchAccepted, RequestBatch

log = logging.getLogger(__name__)

POSTGRES_RETRY_AFTER = 5
# A device's last sync is shown to the minute: writing it at most this often per device loses nothing.
SYNC_WRITE_INTERVAL_SECONDS = 10.0
GC_YOUNG_THRESHOLD = 100_000


async def _record_written(pool: AsyncConnectionPool, marks: dict[UUID, datetime]) -> None:
    async with pool.connection() as conn:
        await devices.record_written_through(conn, marks)


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: CloudSettings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The cloud API and pages. Stores are opened by the lifespan (so tests use `with TestClient(app)`).

    `clock` is the wall time that account locks are measured in (tests pass one they move by hand).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            url = settings.database_url
            if url is None:
                url = stack.enter_context(postgres.embedded_postgres(settings.data_dir))
            await anyio.to_thread.run_sync(postgres.migrate, url)
            pool = postgres.open_pool(url, min_size=settings.pg_pool_min, max_size=settings.pg_pool_max)
            await pool.open()
            stack.push_async_callback(pool.close)
            warehouse_pool = WarehousePool(
                settings.warehouse.clickhouse_url,
                size=settings.warehouse_max_concurrent_inserts,
                queue_timeout=settings.warehouse_queue_timeout_seconds,
            )
            stack.push_async_callback(warehouse_pool.close)
            writer = WarehouseWriter(
                warehouse_pool,
                settings.warehouse.databases,
                retries=settings.warehouse_retries,
                queue_timeout=settings.warehouse_queue_timeout_seconds,
                record_written=functools.partial(_record_written, pool),
            )
            await writer.start()
            stack.push_async_callback(writer.close)  # before the pool closes: queued batches are written
            read_pool = WarehousePool(
                settings.warehouse.clickhouse_url,
                size=settings.dashboard_max_concurrent_queries,
                queue_timeout=settings.warehouse_queue_timeout_seconds,
            )
            stack.push_async_callback(read_pool.close)
            app.state.pg = pool
            app.state.bad_credentials = bad_credential_limiters(
                pool, burst=settings.bad_auth_burst, per_minute=settings.bad_auth_per_minute
            )
            app.state.writer = writer
            app.state.reader = MartsReader(
                read_pool, settings.warehouse.databases, retries=settings.warehouse_retries
            )
            # Report jobs sign with a pool connection and record their outcome: cancel them before it closes.
            app.state.report_jobs = ReportJobs(pool)
            stack.push_async_callback(app.state.report_jobs.aclose)
            tune_gc_for_batches()  # the end of startup: what the process holds now, it holds for good
            # The lifespan state reaches uvicorn's connections: the slow-client limits of this server.
            yield {slow_clients.STATE_KEY: slow_clients.SlowClientGuard.from_settings(settings)}

    app = FastAPI(
        title="Halton Meter Cloud",
        version="0.1.0",
        summary="Ingestion, workspaces and the JSON API of Halton Meter Cloud.",
        lifespan=lifespan,
        docs_url=None,  # served by _install_docs, with the Content-Security-Policy Swagger UI needs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.templates = make_templates()
    # Per process, and safe with several: everything two API processes must agree on is in PostgreSQL
    # (devices and their tokens, sync marks, account locks, report jobs). What is kept here only saves work:
    # - sync_clock and known_projects remember what this process knows PostgreSQL already holds, so most
    #   batches write nothing to it (see ingest); another process knowing less only writes once more;
    # - the token buckets of sign-ups and of pairing codes asked for and typed give each process its own
    #   burst, so N processes allow N times as much: a pairing code is 40 bits for 10 minutes (guessing stays
    #   hopeless at N x 3 a minute). Bad credentials' buckets are in PostgreSQL (set in the lifespan);
    # - `rates` and the marts reader's cache (the rail's model list) copy what the warehouse holds for a few
    #   seconds: every process reads the same warehouse, so two processes differ at most by that TTL.
    app.state.sync_clock = devices.SyncClock(interval=SYNC_WRITE_INTERVAL_SECONDS)
    app.state.known_projects = projects.KnownProjects()
    app.state.clock = clock
    # The times a batch's rows may carry, by the app's clock (tests move it by hand).
    app.state.ingest_window = IngestWindow.from_settings(settings, clock)
    app.state.account_lock = AccountLock(
        after=settings.sign_in_lock_after,
        first=timedelta(seconds=settings.sign_in_lock_seconds),
        longest=timedelta(seconds=settings.sign_in_lock_max_seconds),
        forget_after=timedelta(hours=settings.sign_in_failures_forget_hours),
    )
    app.state.signup_limiter = TokenBucketLimiter(
        burst=settings.signup_burst, per_minute=settings.signup_per_hour / 60
    )
    app.state.pairing_start_limiter = TokenBucketLimiter(
        burst=settings.pairing_start_burst, per_minute=settings.pairing_start_per_minute
    )
    app.state.rates = CatalogueCache(ttl=settings.rates_cache_seconds)
    app.state.pairing_guess_limiter = TokenBucketLimiter(
        burst=settings.pairing_guess_burst, per_minute=settings.pairing_guess_per_minute
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Fixed paths first: /{workspace}/… pages must not capture /v1, /healthz, /signin, /docs and the like.
    _install_docs(app)
    app.include_router(methodology_routes.pages)
    for module in (
        health_routes, ingest_routes, paired_meter_routes, rates_routes, pairing_routes, auth_routes,
        invitations_routes, workspaces_routes,
    ):  # fmt: skip
        app.include_router(module.router)
    app.include_router(pairing_routes.pages)
    for module in (
        devices_routes, members_routes, api_keys_routes, projects_routes, budget_alerts_routes,
        spend_anomalies_routes, audit_routes, captured_requests_routes, verify_routes, reports_routes,
    ):  # fmt: skip
        app.include_router(module.router)
    dashboards = (
        overview_routes, project_view_routes, traces_routes, reconciliation_routes, executive_routes,
        cost_centers_routes, branches_routes, clusters_routes, optimization_routes,
    )  # fmt: skip
    for module in dashboards:
        app.include_router(module.router)
    # `verify` before `reports`, whose `/reports/{job_id}` would take "verify" for a job id.
    for module in (
        workspaces_routes, devices_routes, members_routes, api_keys_routes, branding_routes,
        billing_connections_routes, export_settings_routes, projects_routes, budget_alerts_routes, audit_routes,
        spend_anomalies_routes, *dashboards, verify_routes, reports_routes,
    ):  # fmt: skip
        app.include_router(module.pages)

    _install_error_handlers(app)
    _document_batch_body(app)
    app.add_middleware(RefuseNulCharacters)
    app.add_middleware(SecurityHeaders, headers=security_headers.default_headers(settings))
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs, as FastAPI would serve it, with a policy that allows its CDN and inline script."""
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - Swagger UI"
    )
    policy = security_headers.docs_policy(page.body)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page.body, headers={"Content-Security-Policy": policy})


class RefuseNulCharacters:
    """A NUL character in the path or query string is never meaningful, and PostgreSQL text cannot hold one:
    answer 422 up front instead of letting it reach a store as a server error. (Plain ASGI, not
    BaseHTTPMiddleware: it costs ingestion nothing measurable.)"""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and (b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]):
            response = JSONResponse(
                {"detail": "the address contains a NUL character (%00), which no parameter may hold"},
                status_code=422,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def tune_gc_for_batches() -> None:
    """Keep the garbage collector from eating the API's CPU while batches are in flight.

    A 1,000-row batch is some 4,000 container objects (a model, its dict, its fields-set and a UUID per
    row) that live until the batch is written. With the default thresholds they set off a young
    collection every 700 allocations, and their survival full collections that walk the whole startup
    heap (FastAPI, pydantic schemas, clients: about 130,000 objects): measured at 20-30% of the API's
    CPU with 4 meters sending. So the startup heap is frozen (never scanned again; it is permanent
    anyway), and a young collection waits for 100,000 allocations, by which time most batches have been
    written and freed by reference counting, which needs no collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def app_from_env() -> FastAPI:
    """For `uvicorn --factory halton_api.app:app_from_env`: settings from `HALTON_*` variables."""
    return create_app(CloudSettings())


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/v1/")
        or path == "/healthz"
        or "application/json" in request.headers.get("accept", "")
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def page_or_json(
        request: Request, status_code: int, detail: str, headers: dict | None = None
    ) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
        return await render(
            request, "error.html", status_code=status_code, headers=headers, detail=detail, status=status_code
        )

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": "sign in, or send a workspace API key as `Authorization: Bearer hm_key_…`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return RedirectResponse(f"/signin?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return await page_or_json(request, exc.status_code, exc.detail)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.detail, dict) and "detail" in exc.detail:  # already a Problem (a rejected batch)
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if detail is None or _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return await page_or_json(request, exc.status_code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in error['loc'] if p not in ('body', 'query', 'path', 'form'))}: {error['msg']}"
            for error in exc.errors()
        ]
        if _wants_json(request):
            return JSONResponse(
                {"detail": "; ".join(problems), "errors": _jsonable_errors(exc.errors())}, status_code=422
            )
        return await page_or_json(request, 422, "; ".join(problems))

    @app.exception_handler(WarehouseError)
    async def _warehouse(request: Request, exc: WarehouseError) -> Response:
        return await page_or_json(request, exc.status_code, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(request: Request, exc: psycopg.DataError) -> Response:
        # The stores bind every value as a parameter, so a DataError is a value PostgreSQL cannot hold (a NUL
        # in text a model let through): the request's fault, not the server's. Models name the field where
        # they can (`StoredText`); this keeps any path they miss from answering 500.
        log.info("refused a value the control plane cannot store: %s", exc)
        return await page_or_json(request, 422, f"a value cannot be stored: {exc}")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _postgres(request: Request, exc: Exception) -> Response:
        log.warning("control-plane database unavailable: %s", exc)
        return await page_or_json(
            request,
            503,
            "the control-plane database is unavailable; retry shortly",
            {"Retry-After": str(POSTGRES_RETRY_AFTER)},
        )


def _jsonable_errors(errors: object) -> list[dict]:
    result = []
    for error in errors:  # type: ignore[attr-defined]
        result.append(
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        )
    return result


def _document_batch_body(app: FastAPI) -> None:
    """The batch route reads its body itself (gzip, size limits): describe it in the OpenAPI schema."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        batch_schema = RequestBatch.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in batch_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["RequestBatch"] = batch_schema
        components.setdefault(
            "BatchAccepted", BatchAccepted.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        operation = schema["paths"]["/v1/requests/batch"]["post"]
        operation["requestBody"] = {
            "required": True,
            "description": "A `RequestBatch` as JSON, optionally with `Content-Encoding: gzip`.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RequestBatch"}}},
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
