"""Every mutating page route, tried with every role: only the roles `roles.MINIMUM_ROLE` names get through."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from halton_api.roles import ROLES, Permission, allows
from halton_api.store import invitations, projects
from halton_api.store.audit import Actor
from halton_api.testing.factories import (
    Browser,
    add_member,
    declared_routes,
    make_api_key,
    make_device,
    make_user,
    make_workspace,
    run,
)


@dataclass
class Case:
    path: str  # with {workspace} and the target's id filled in by `target`
    permission: Permission
    target: Callable[[Any], dict[str, str]]  # makes a fresh thing to act on; returns path params
    form: dict[str, str] | Callable[[dict[str, str]], dict[str, str]]

    def form_for(self, params: dict[str, str]) -> dict[str, str]:
        return self.form(params) if callable(self.form) else self.form


def _device(env) -> dict[str, str]:
    return {"id": str(make_device(env.db, workspace=env.workspace).device.id)}


def _removed_device(env) -> dict[str, str]:
    from halton_api.store import devices

    created = make_device(env.db, workspace=env.workspace)
    run(
        env.db,
        lambda c: devices.set_status(
            c,
            workspace_id=env.workspace.id,
            device_id=created.device.id,
            status="removed",
            actor=Actor.system(),
        ),
    )
    return {"id": str(created.device.id)}


def _invitation(env) -> dict[str, str]:
    invitation, _ = run(
        env.db,
        lambda c: invitations.create_invitation(
            c,
            workspace_id=env.workspace.id,
            email=f"{secrets.token_hex(3)}@example.com",
            role="member",
            ttl=timedelta(days=1),
            actor=Actor.system(),
        ),
    )
    return {"id": str(invitation.id)}


def _member(env) -> dict[str, str]:
    user = make_user(env.db)
    add_member(env.db, workspace=env.workspace, user=user, role="member")
    return {"id": str(user.id)}


def _api_key(env) -> dict[str, str]:
    return {"id": str(make_api_key(env.db, workspace=env.workspace).api_key.id)}


def _project(env) -> dict[str, str]:
    slug = f"p-{secrets.token_hex(3)}"
    run(
        env.db,
        lambda c: projects.register_projects(
            c, workspace_id=env.workspace.id, slugs=[slug], actor=Actor.system()
        ),
    )
    with psycopg.connect(env.db) as conn:
        return {"id": str(conn.execute("SELECT id FROM projects WHERE slug = %s", (slug,)).fetchone()[0])}


def _project_and_cost_center(env) -> dict[str, str]:
    centre = run(
        env.db,
        lambda c: projects.create_cost_center(
            c, workspace_id=env.workspace.id, name=f"cc-{secrets.token_hex(3)}", actor=Actor.system()
        ),
    )
    return {**_project(env), "cost_center": str(centre.id)}


def _connection(env) -> dict[str, str]:
    from halton_api.store import provider_connections

    run(
        env.db,
        lambda c: provider_connections.add(
            c, workspace_id=env.workspace.id, provider="openai", admin_key="sk-admin-roles-0000",
            team_id=None, secret=b"roles-secret", actor=Actor.system(),
        ),
    )  # fmt: skip
    return {"id": "openai"}


def _project_slug(env) -> dict[str, str]:
    slug = f"p-{secrets.token_hex(3)}"
    run(
        env.db,
        lambda c: projects.register_projects(
            c, workspace_id=env.workspace.id, slugs=[slug], actor=Actor.system()
        ),
    )
    return {"slug": slug}


def _export(env) -> dict[str, str]:
    from halton_api.store import export_destinations

    run(
        env.db,
        lambda c: export_destinations.configure(
            c, workspace_id=env.workspace.id, bucket="roles-exports", prefix="", endpoint_url="", region="",
            access_key_id="AKIAROLES", secret_access_key="roles-secret-key", secret=b"roles-secret",
            actor=Actor.system(),
        ),
    )  # fmt: skip
    return {}


def _project_budget(env) -> dict[str, str]:
    project_id = UUID(_project(env)["id"])
    budget = run(
        env.db,
        lambda c: projects.set_budget(
            c, workspace_id=env.workspace.id, project_id=project_id, monthly_amount=Decimal(100),
            actor=Actor.system(),
        ),
    )  # fmt: skip
    return {"budget": str(budget.id)}


def _nothing(env) -> dict[str, str]:
    return {}


def _budget(env) -> dict[str, str]:
    amount = Decimal(secrets.randbelow(900) + 100)  # a fresh figure each time: setting it is a change
    budget = run(
        env.db,
        lambda c: projects.set_budget(
            c, workspace_id=env.workspace.id, project_id=None, monthly_amount=amount, actor=Actor.system()
        ),
    )
    return {"budget": str(budget.id)}


def _anomaly(env) -> dict[str, str]:
    with psycopg.connect(env.db) as conn:
        row = conn.execute(
            "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message, evidence)"
            " VALUES (%s, %s, 'loop', 'prompt', 'abc', 'Runaway loop', '{}') RETURNING id",
            (env.workspace.id, f"loop:{secrets.token_hex(4)}:2026-11-30"),
        ).fetchone()
    return {"id": str(row[0])}


def _cost_center(env) -> dict[str, str]:
    centre = run(
        env.db,
        lambda c: projects.create_cost_center(
            c, workspace_id=env.workspace.id, name=f"cc-{secrets.token_hex(3)}", actor=Actor.system()
        ),
    )
    return {"cost_center": str(centre.id)}


CASES = [
    Case("/{workspace}/settings/devices/{id}/rename", Permission.MANAGE_DEVICES, _device, {"name": "renamed"}),
    Case("/{workspace}/settings/devices/{id}/revoke", Permission.MANAGE_DEVICES, _device, {}),
    Case("/{workspace}/settings/devices/{id}/remove", Permission.MANAGE_DEVICES, _device, {}),
    Case("/{workspace}/settings/devices/{id}/reinstate", Permission.MANAGE_DEVICES, _removed_device, {}),
    Case("/{workspace}/settings/members/invite", Permission.MANAGE_MEMBERS, _nothing, {"email": "x@example.com", "role": "member"}),
    Case("/{workspace}/settings/members/invitations/{id}/revoke", Permission.MANAGE_MEMBERS, _invitation, {}),
    Case("/{workspace}/settings/members/{id}/role", Permission.MANAGE_MEMBERS, _member, {"role": "viewer"}),
    Case("/{workspace}/settings/members/{id}/remove", Permission.MANAGE_MEMBERS, _member, {}),
    Case("/{workspace}/settings/advanced/api-keys", Permission.MANAGE_API_KEYS, _nothing, {"name": "ci"}),
    Case("/{workspace}/settings/advanced/api-keys/{id}/revoke", Permission.MANAGE_API_KEYS, _api_key, {}),
    Case("/{workspace}/settings/projects/{id}", Permission.MANAGE_CONFIG, _project, {"name": "Renamed", "hourly_rate": "120.50"}),
    Case("/{workspace}/settings/cost-centers", Permission.MANAGE_CONFIG, _nothing, {"name": "R&D"}),
    Case("/{workspace}/settings/budgets", Permission.MANAGE_CONFIG, _nothing, {"monthly_amount": "500.00"}),
    Case("/{workspace}/settings/budgets", Permission.MANAGE_CONFIG, _cost_center,
         lambda p: {"monthly_amount": "750.00", "cost_center_id": p["cost_center"]}),
    Case("/{workspace}/reconciliation/statements", Permission.MANAGE_CONFIG, _nothing, {"provider": "gemini", "month": "2026-01", "amount": "12.50"}),
    Case("/{workspace}/cost-centers", Permission.MANAGE_CONFIG, _nothing, {"name": "Client Work"}),
    Case("/{workspace}/cost-centers/assign", Permission.MANAGE_CONFIG, _project_and_cost_center,
         lambda p: {"project_id": p["id"], "cost_center_id": p["cost_center"]}),
    Case("/{workspace}/settings/billing/connections/{id}/remove", Permission.MANAGE_BILLING, _connection, {}),
    Case("/{workspace}/settings/exports", Permission.MANAGE_BILLING, _nothing,
         {"bucket": "roles-exports", "access_key_id": "AKIAROLES", "secret_access_key": "roles-secret-key"}),
    Case("/{workspace}/settings/exports/remove", Permission.MANAGE_BILLING, _export, {}),
    Case("/{workspace}/settings/billing/project-map", Permission.MANAGE_BILLING, _project_slug,
         lambda p: {"provider": "openai", "provider_project": "proj_abc", "project": p["slug"]}),
    Case("/{workspace}/settings/alerts", Permission.MANAGE_CONFIG, _nothing, {"webhook_url": "https://hooks.example.com/x"}),
    Case("/{workspace}/settings/budgets/alerts", Permission.MANAGE_CONFIG, _budget,
         lambda p: {"budget_id": p["budget"], "thresholds": "50,90", "forecast": "on"}),
    Case("/{workspace}/settings/budgets/limit", Permission.MANAGE_LIMITS, _project_budget,
         lambda p: {"budget_id": p["budget"], "limit": "on"}),
    Case("/{workspace}/anomalies/{id}/close", Permission.MANAGE_CONFIG, _anomaly, {"note": "a test run"}),
    Case("/{workspace}/optimization/catalog/suppress", Permission.MANAGE_CONFIG, _nothing, {"kind": "batch_api", "project": "p"}),
]  # fmt: skip
# Mutating routes whose role checks need what this module cannot make cheaply (a recommendation in the
# warehouse, a multipart upload): each is tried with every refused role where it is tested.
COVERED_ELSEWHERE = {
    "/{workspace}/optimization/{recommendation_id}/accept": "tests/test_dashboard_optimization.py",
    "/{workspace}/optimization/{recommendation_id}/dismiss": "tests/test_dashboard_optimization.py",
    "/{workspace}/optimization/{recommendation_id}/reopen": "tests/test_dashboard_optimization.py",
    "/{workspace}/optimization/catalog/unsuppress": "tests/test_dashboard_optimization.py",
    "/{workspace}/settings/advanced/logo": "api/tests/routers/test_branding.py",
    "/{workspace}/settings/advanced/logo/remove": "api/tests/routers/test_branding.py",
    # Adding and testing a key call the provider's billing API: tried with every refused role against a fake.
    "/{workspace}/settings/billing/connections": "tests/test_billing_connections_e2e.py",
    "/{workspace}/settings/billing/connections/{provider}/test": "tests/test_billing_connections_e2e.py",
    # Starting a report needs only `view` (a viewer may, a stranger may not) and audits when it is signed.
    "/{workspace}/reports/new": "api/tests/routers/test_reports.py",
    # Checking a PDF changes nothing and is open to every member (a stranger gets 404): a multipart upload.
    "/{workspace}/reports/verify": "tests/test_reports_verify.py",
}


@dataclass
class Env:
    db: str
    workspace: Any


def _route_template(path: str) -> str:
    return (
        path.replace("{id}", "{x}")
        .replace("{device_id}", "{x}")
        .replace("{invitation_id}", "{x}")
        .replace("{user_id}", "{x}")
        .replace("{key_id}", "{x}")
        .replace("{project_id}", "{x}")
        .replace("{recommendation_id}", "{x}")
        .replace("{provider}", "{x}")
        .replace("{anomaly_id}", "{x}")
    )


def test_the_matrix_covers_every_mutating_workspace_route() -> None:
    mutating = {
        _route_template(route.path)
        for route in declared_routes()
        if route.path.startswith("/{workspace}") and route.methods - {"GET", "HEAD"}
    }
    covered = {_route_template(case.path) for case in CASES} | {_route_template(p) for p in COVERED_ELSEWHERE}
    assert mutating == covered


def _audit_count(db: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_against_each_mutating_route(client: TestClient, postgres_url: str, role: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    env = Env(postgres_url, workspace)
    user = owner if role == "owner" else make_user(postgres_url)
    if role != "owner":
        add_member(postgres_url, workspace=workspace, user=user, role=role)
    browser = Browser(client, postgres_url, user)
    for case in CASES:
        params = case.target(env)
        path = case.path.format(workspace=workspace.slug, id=params.get("id", ""))
        before = _audit_count(postgres_url)
        response = browser.post(path, case.form_for(params))
        if allows(role, case.permission):
            assert response.status_code in (200, 303), (
                f"{role} {path}: {response.status_code} {response.text[:300]}"
            )
            assert _audit_count(postgres_url) > before, f"{role} {path}: no audit event"
        else:
            assert response.status_code == 403, f"{role} {path}: {response.status_code}"
            assert "cannot do this" in response.text
            assert _audit_count(postgres_url) == before, f"{role} {path}: changed something"


def test_a_non_member_gets_404_on_every_workspace_route(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    env = Env(postgres_url, workspace)
    stranger = Browser(client, postgres_url, make_user(postgres_url))
    for case in CASES:
        params = case.target(env)
        path = case.path.format(workspace=workspace.slug, id=params.get("id", ""))
        assert stranger.post(path, case.form_for(params)).status_code == 404, path
    for page in (
        "overview",
        "audit",
        "audit.csv",
        "settings/devices",
        "settings/members",
        "settings/advanced",
        "settings/projects",
    ):
        assert stranger.get(f"/{workspace.slug}/{page}").status_code == 404, page


def test_only_owners_grant_or_take_ownership(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin_user = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=admin_user, role="admin")
    admin = Browser(client, postgres_url, admin_user)
    base = f"/{workspace.slug}/settings/members"
    assert admin.post(f"{base}/{owner.id}/role", {"role": "member"}).status_code == 403
    assert admin.post(f"{base}/{admin_user.id}/role", {"role": "owner"}).status_code == 403
    assert admin.post(f"{base}/invite", {"email": "boss@example.com", "role": "owner"}).status_code == 403
    assert admin.post(f"{base}/{owner.id}/remove").status_code == 403
    # The last owner cannot step down, even by their own hand.
    response = Browser(client, postgres_url, owner).post(f"{base}/{owner.id}/role", {"role": "admin"})
    assert response.status_code == 409 and "last owner" in response.text
