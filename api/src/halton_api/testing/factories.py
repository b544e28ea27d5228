"""Test data for the API: users, workspaces, devices, keys, batches; and a signed-in browser.

Store functions are async; these helpers run them on a short-lived connection of their own, so tests
can set up state exactly as the product would, then drive the real app over HTTP.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import psycopg
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from halton_api import csrf, passwords
from halton_api.batch_decoding import WireRow
from halton_api.deps import SESSION_COOKIE
from halton_api.models import ApiKeyCreated, DeviceCreated, UserPublic, WorkspacePublic
from halton_api.roles import Role
from halton_api.store import api_keys, devices, users, workspaces
from halton_api.store.audit import Actor

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
_PASSWORD_HASH = passwords.hash_password(PASSWORD)


def run(database_url: str, operation: Callable[[Any], Awaitable[T]]) -> T:
    """Run `operation(conn)` in its own transaction on a fresh connection, and commit."""

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
            result = await operation(conn)
            await conn.commit()
            return result

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from a thread whose loop is running (Playwright's sync API keeps one): run in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def make_user(database_url: str, *, email: str | None = None, name: str = "Test User") -> UserPublic:
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    return run(
        database_url, lambda c: users.create_user(c, email=email, name=name, password_hash=_PASSWORD_HASH)
    )


def make_workspace(database_url: str, *, owner: UserPublic, name: str | None = None) -> WorkspacePublic:
    name = name or f"Team {secrets.token_hex(3)}"
    return run(database_url, lambda c: workspaces.create_workspace(c, name=name, owner=owner))


def add_member(database_url: str, *, workspace: WorkspacePublic, user: UserPublic, role: Role) -> None:
    run(
        database_url,
        lambda c: workspaces.add_member(
            c, workspace_id=workspace.id, user=user, role=role, actor=Actor.system(), via="test"
        ),
    )


def make_device(
    database_url: str,
    *,
    workspace: WorkspacePublic,
    machine_id: str | None = None,
    hostname: str = "laptop.local",
    paired_by: UserPublic | None = None,
) -> DeviceCreated:
    machine_id = machine_id or f"machine-{secrets.token_hex(4)}"
    return run(
        database_url,
        lambda c: devices.create_device(
            c,
            workspace_id=workspace.id,
            machine_id=machine_id,
            hostname=hostname,
            paired_by=paired_by,
            actor=Actor.system("pairing"),
        ),
    )


def make_api_key(database_url: str, *, workspace: WorkspacePublic, name: str = "script") -> ApiKeyCreated:
    return run(
        database_url,
        lambda c: api_keys.create_api_key(c, workspace_id=workspace.id, name=name, actor=Actor.system()),
    )


def row(machine_id: str, **overrides: Any) -> dict[str, Any]:
    """One valid `RequestRow` as JSON-ready data."""
    started = overrides.pop("started_at", datetime.now(UTC) - timedelta(minutes=5))
    data: dict[str, Any] = {
        "request_uid": str(uuid.uuid4()),
        "machine_id": machine_id,
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=2)).isoformat(),
        "provider": "anthropic",
        "model_requested": "claude-sonnet-4-5",
        "model_served": "claude-sonnet-4-5-20250929",
        "endpoint": "/v1/messages",
        "status_code": 200,
        "streamed": True,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 200,
        "cost_usd": "0.012300000",
        "price_card": "test-card",
        "project": "acme/app",
        "attribution_tier": "header",
        "prompt_hash": secrets.token_hex(16),
        "provider_request_id": f"req_{secrets.token_hex(8)}",
        "latency_ms": 2000,
        "ttfb_ms": 300,
    }
    data.update(overrides)
    return data


def wire_row(data: dict[str, Any]) -> WireRow:
    """A `row` as the API's decoder reads it from a meter's JSON."""
    return msgspec.json.decode(json.dumps(data), type=WireRow)


def batch(machine_id: str, rows: int = 10, **row_overrides: Any) -> dict[str, Any]:
    """A valid `RequestBatch` as JSON-ready data."""
    return {
        "schema_version": 1,
        "batch_id": str(uuid.uuid4()),
        "rows": [row(machine_id, **row_overrides) for _ in range(rows)],
    }


def cost(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))


def declared_routes() -> list[APIRoute]:
    """Every route of every router module (the app nests routers, so read them where they are declared)."""
    import halton_api.routers as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"halton_api.routers.{info.name}")
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                found.extend(route for route in value.routes if isinstance(route, APIRoute))
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


class Browser:
    """A person's browser on the app: its own cookie jar; signs in by creating a session directly."""

    def __init__(self, main: TestClient, database_url: str, user: UserPublic | None = None) -> None:
        self.app: FastAPI = main.app  # type: ignore[assignment]
        self.client = TestClient(self.app, follow_redirects=False)
        # Share the running app's event loop (its pools live there) instead of starting one per request.
        self.client.portal = main.portal
        self.database_url = database_url
        self.user = user
        if user is not None:
            token = run(
                database_url, lambda c: users.create_session(c, user_id=user.id, ttl=timedelta(days=1))
            )
            self.client.cookies.set(SESSION_COOKIE, token)
        self.client.cookies.set(csrf.COOKIE, csrf.new_cookie_value())

    def csrf_token(self) -> str:
        secret = self.app.state.settings.secret()
        return csrf.token_for(
            secret, self.client.cookies.get(csrf.COOKIE), self.client.cookies.get(SESSION_COOKIE)
        )

    def get(self, path: str, **kwargs: Any):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, *, with_csrf: bool = True, **kwargs: Any):
        form = dict(data or {})
        if with_csrf:
            form.setdefault(csrf.FIELD, self.csrf_token())
        return self.client.post(path, data=form, **kwargs)
