"""Test data: the control plane in PostgreSQL, request rows in raw.requests, and a small hand-checked workspace."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from clickhouse_connect.driver.client import Client

from halton_meter.catalogue import Catalogue, parse_catalogue
from halton_meter.protocol import RequestRow
from halton_meter.secretbox import seal_provider_key
from halton_pipelines.demo_data import Billing, Demo
from halton_pipelines.testing.fake_billing import FakeCost, FakeUsage, Organisation
from halton_warehouse import Databases

# raw.requests columns as the API's batch writer fills them (halton_api.warehouse_access.native_blocks.REQUEST_COLUMNS).
REQUEST_COLUMNS: tuple[str, ...] = (
    "workspace_id", "device_id", "request_uid", "machine_id", "batch_id", "started_at", "ended_at", "provider",
    "model_requested", "model_served", "endpoint", "status_code", "streamed", "complete", "service_tier", "batch",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "reasoning_tokens", "cost_usd", "price_card", "project", "attribution_tier", "prompt_hash",
    "provider_request_id", "latency_ms", "ttfb_ms",
)  # fmt: skip

SECRET = "test-cloud-secret-" + "x" * 32


def catalogue_of(*models: dict) -> Catalogue:
    """A validated catalogue of `models` (rates.json format 1 model entries), for a test's own prices."""
    return parse_catalogue(
        {"format": 1, "version": "test-catalogue", "generated_from": [{"name": "test", "version": "1"}],
         "models": list(models)}
    )  # fmt: skip


def catalogue_model(provider: str, model: str, rates: dict[str, str], **entry: object) -> dict:
    """One catalogue model entry matching names that start with `model`, standard `rates` from 1970."""
    return {
        "provider": provider, "id": model, "source": "test", "match": {"starts_with": model},
        "prices": [{"from": None, "source": "test", "rates": rates, **entry}],
    }  # fmt: skip


def insert_request_rows(
    client: Client, databases: Databases, workspace_id: uuid.UUID, device_id: uuid.UUID, rows: Sequence[RequestRow],
    *, batch_id: uuid.UUID | None = None,
) -> None:  # fmt: skip
    """Insert rows as the API does for one batch (workspace, device and batch set by the caller)."""
    batch = batch_id or uuid.uuid4()
    data = []
    for row in rows:
        values = row.model_dump()
        values.update(workspace_id=workspace_id, device_id=device_id, batch_id=batch)
        data.append([values[column] for column in REQUEST_COLUMNS])
    client.insert(f"{databases.raw}.requests", data, column_names=list(REQUEST_COLUMNS))


def seed_demo_control_plane(url: str, demo: Demo, billing: Billing) -> None:
    """The demo workspace as the API would hold it: users, workspace, memberships, devices, cost centers,
    projects, budgets, and the pasted Gemini statements."""
    ws = demo.workspace
    with psycopg.connect(url) as conn, conn.transaction():
        for m in demo.members:
            conn.execute(
                "INSERT INTO users (id, email, name, password_hash) VALUES (%s, %s, %s, 'x')",
                (m.user_id, m.email, m.name),
            )
        conn.execute(
            "INSERT INTO workspaces (id, slug, name, created_by, created_at) VALUES (%s, %s, %s, %s, %s)",
            (ws.workspace_id, ws.slug, ws.name, demo.members[0].user_id, ws.created_at),
        )
        for m in demo.members:
            conn.execute(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (%s, %s, %s, %s)",
                (ws.workspace_id, m.user_id, m.role, m.joined_at),
            )
        for d in demo.devices:
            conn.execute(
                "INSERT INTO devices (id, workspace_id, machine_id, hostname, name, paired_by, paired_at, status, "
                "token_hash, token_prefix) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'hm_sync_x')",
                (
                    d.device_id,
                    ws.workspace_id,
                    d.machine_id,
                    d.hostname,
                    d.name,
                    d.paired_by,
                    d.paired_at,
                    d.status,
                    secrets.token_bytes(32),
                ),
            )
        for c in demo.cost_centers:
            conn.execute(
                "INSERT INTO cost_centers (id, workspace_id, name, created_at) VALUES (%s, %s, %s, %s)",
                (c.cost_center_id, ws.workspace_id, c.name, c.created_at),
            )
        for p in demo.projects:
            conn.execute(
                "INSERT INTO projects (id, workspace_id, slug, name, archived, hourly_rate, cost_center_id, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    p.project_id,
                    ws.workspace_id,
                    p.slug,
                    p.name,
                    p.archived,
                    p.hourly_rate,
                    p.cost_center_id,
                    p.created_at,
                ),
            )
        for b in demo.budgets:
            conn.execute(
                "INSERT INTO budgets (id, workspace_id, project_id, monthly_amount, currency, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (b.budget_id, ws.workspace_id, b.project_id, b.monthly_amount, b.currency, b.updated_at),
            )
        for s in billing.statements():
            conn.execute(
                "INSERT INTO billing_statements (workspace_id, provider, period, amount, note, entered_by, entered_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    ws.workspace_id,
                    s.provider,
                    s.period,
                    s.amount,
                    s.note,
                    demo.members[1].user_id,
                    s.entered_at,
                ),
            )


@dataclass
class HandWorkspace:
    """A tiny workspace whose reconciliation is checked by hand: its bills come from the fake billing APIs."""

    workspace_id: uuid.UUID = field(default_factory=lambda: uuid.UUID("00000000-0000-4000-8000-0000000000b1"))
    device_id: uuid.UUID = field(default_factory=lambda: uuid.UUID("00000000-0000-4000-8000-0000000000b2"))
    user_id: uuid.UUID = field(default_factory=lambda: uuid.UUID("00000000-0000-4000-8000-0000000000b3"))
    project_id: uuid.UUID = field(default_factory=lambda: uuid.UUID("00000000-0000-4000-8000-0000000000b4"))
    openai_key: str = "sk-admin-openai-hand"
    anthropic_key: str = "sk-ant-admin01-hand"
    xai_key: str = "xai-mgmt-hand"
    xai_team: str = "4f3c2a10-8e6b-4c1d-9a7e-2b5d6c8e9f01"

    # (provider, served model, day, logged costs of its calls)
    CALLS = (
        ("openai", "gpt-5-mini-2025-08-07", date(2026, 10, 1), ("1.000000000", "2.000000000", "0.500000000")),
        ("openai", "gpt-5-mini-2025-08-07", date(2026, 10, 2), ("10.000000000",)),
        ("anthropic", "claude-haiku-4-5-20251001", date(2026, 10, 1), ("0.250000000", "0.250000000")),
        ("xai", "grok-code-fast-1", date(2026, 10, 1), ("1.000000000",)),
        ("gemini", "gemini-2.5-flash", date(2026, 9, 30), ("4.990000000",)),
    )

    def rows(self) -> list[RequestRow]:
        rows = []
        for provider, model, day, costs in self.CALLS:
            for i, cost in enumerate(costs):
                started = datetime(day.year, day.month, day.day, 12, i, tzinfo=UTC)
                rows.append(self.row(provider, model, started, Decimal(cost), i))
        return rows

    def row(self, provider: str, model: str, started: datetime, cost: Decimal, i: int = 0) -> RequestRow:
        return RequestRow(
            request_uid=uuid.uuid5(self.workspace_id, f"{provider}/{started.isoformat()}/{i}"),
            machine_id="m-hand", started_at=started, ended_at=started + timedelta(seconds=2), provider=provider,
            model_requested=model, model_served=model, endpoint="/v1/chat/completions", status_code=200,
            input_tokens=1000, output_tokens=100, cache_read_tokens=0, cost_usd=cost, price_card="hand",
            project="alpha", attribution_tier="header", prompt_hash=f"hand-{provider}-{i}",
        )  # fmt: skip

    def organisations(self) -> dict[str, Organisation]:
        oct1, oct2 = date(2026, 10, 1), date(2026, 10, 2)
        return {
            self.openai_key: Organisation("openai", costs=[
                FakeCost(oct1, "gpt-5-mini-2025-08-07, input", Decimal("1.2"), project="proj_hand"),
                FakeCost(oct1, "gpt-5-mini-2025-08-07, output", Decimal("2.28"), project="proj_hand"),
                FakeCost(oct2, "gpt-5-mini-2025-08-07, input", Decimal("4"), project="proj_hand"),
                FakeCost(oct2, "gpt-5-mini-2025-08-07, output", Decimal("6"), project="proj_hand"),
            ], usage=[
                FakeUsage(oct1, "gpt-5-mini-2025-08-07", 3000, 0, 0, 300, requests=3),
            ]),
            self.anthropic_key: Organisation("anthropic", costs=[
                FakeCost(oct1, "Claude Haiku 4.5 Usage - Input Tokens", Decimal("0.19"), model="claude-haiku-4-5"),
                FakeCost(oct1, "Claude Haiku 4.5 Usage - Output Tokens", Decimal("0.30"), model="claude-haiku-4-5"),
            ], usage=[
                FakeUsage(oct1, "claude-haiku-4-5-20251001", 1500, 400, 100, 200, requests=2),
            ]),
            self.xai_key: Organisation("xai", team_id=self.xai_team, costs=[
                FakeCost(oct1, "grok-code-fast-1", Decimal("1.0"), model="grok-code-fast-1"),
            ]),
        }  # fmt: skip

    def seed_control_plane(self, url: str, secret: str = SECRET) -> None:
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute(
                "INSERT INTO users (id, email, name, password_hash) VALUES (%s, 'hand@example.com', 'Hand', 'x')",
                (self.user_id,),
            )
            conn.execute(
                "INSERT INTO workspaces (id, slug, name, created_by) VALUES (%s, 'hand', 'Hand', %s)",
                (self.workspace_id, self.user_id),
            )
            conn.execute(
                "INSERT INTO memberships (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
                (self.workspace_id, self.user_id),
            )
            conn.execute(
                "INSERT INTO devices (id, workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix) "
                "VALUES (%s, %s, 'm-hand', 'hand-laptop', %s, %s, 'hm_sync_h')",
                (self.device_id, self.workspace_id, self.user_id, secrets.token_bytes(32)),
            )
            conn.execute(
                "INSERT INTO projects (id, workspace_id, slug, name) VALUES (%s, %s, 'alpha', 'Alpha')",
                (self.project_id, self.workspace_id),
            )
            for provider, key, team in (
                ("openai", self.openai_key, None),
                ("anthropic", self.anthropic_key, None),
                ("xai", self.xai_key, self.xai_team),
            ):
                conn.execute(
                    "INSERT INTO provider_connections (workspace_id, provider, admin_key_encrypted, key_prefix, "
                    "team_id) VALUES (%s, %s, %s, %s, %s)",
                    (self.workspace_id, provider, seal_provider_key(secret, key), key[:8], team),
                )
            conn.execute(
                "INSERT INTO billing_statements (workspace_id, provider, period, amount, note, entered_by) "
                "VALUES (%s, 'gemini', '2026-09-01', 5.00, 'pasted', %s)",
                (self.workspace_id, self.user_id),
            )


CALL_NAMESPACE = uuid.UUID("7f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b")


def metered_call(
    key: str, project: str, started: datetime, *, input_tokens: int | None, output_tokens: int | None,
    provider: str = "anthropic", model: str = "claude-sonnet-4-5-20250929", prompt_hash: str | None = None,
    streamed: bool = True, status_code: int = 200, cache_read_tokens: int | None = 0, cost_usd: Decimal | None = None,
    complete: bool = True,
) -> RequestRow:  # fmt: skip
    """One call with the usage given and nothing else: its cost left to the warehouse's re-pricing (the card the
    test wrote), its request id and provider request id derived from `key`, its prompt unique unless given."""
    uid = uuid.uuid5(CALL_NAMESPACE, key)
    return RequestRow(
        request_uid=uid, machine_id="m-scenario", started_at=started, ended_at=started + timedelta(seconds=1),
        provider=provider, model_requested=model, model_served=model if status_code == 200 else None,
        endpoint="/v1/messages", status_code=status_code, streamed=streamed, complete=complete,
        input_tokens=input_tokens, output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens if input_tokens is not None else None, cost_usd=cost_usd,
        project=project, attribution_tier="header", prompt_hash=prompt_hash or f"unique-{key}",
        provider_request_id=f"msg_{uid.hex[:24]}", latency_ms=1000, ttfb_ms=200,
    )  # fmt: skip
