"""`halton-cloud demo` against the real stores and a live API: it fills the workspace, and twice is once."""

from __future__ import annotations

import re

import httpx
import psycopg

from halton_api.cloud_settings import CloudSettings
from halton_api.demo import DEMO_PASSWORD, load_demo
from halton_api.deps import SESSION_COOKIE
from halton_warehouse import connect
from halton_warehouse.demo.demo_data import DEVICES, MEMBERS, PROJECTS

REQUESTS = 3_000


def _load(settings: CloudSettings, live_server: str, **kwargs):
    assert settings.database_url is not None
    return load_demo(
        database_url=settings.database_url,
        warehouse_url=settings.warehouse.clickhouse_url,
        databases=settings.warehouse.databases,
        api_url=live_server,
        requests=REQUESTS,
        **kwargs,
    )


def _count(settings: CloudSettings, table: str, workspace_id) -> int:
    client = connect(settings.warehouse.clickhouse_url)
    try:
        result = client.query(
            f"SELECT count() FROM {settings.warehouse.databases.raw}.{table} WHERE workspace_id = {{ws:UUID}}",
            parameters={"ws": str(workspace_id)},
        )
        return int(result.result_rows[0][0])
    finally:
        client.close()


def test_demo_fills_the_workspace_and_a_second_run_changes_nothing(
    settings: CloudSettings, live_server: str
) -> None:
    first = _load(settings, live_server)
    assert not first.skipped
    assert first.accepted + first.duplicates == REQUESTS
    workspace = first.workspace
    assert _count(settings, "requests_dedup", workspace.id) == REQUESTS
    costs = _count(settings, "provider_costs FINAL", workspace.id)
    assert costs > 0

    # Again, sending everything: ingestion dedupes on request_uid, nothing is doubled.
    second = _load(settings, live_server, resend=True)
    assert second.workspace.id == workspace.id
    assert second.accepted == 0 and second.duplicates == REQUESTS
    assert _count(settings, "requests_dedup", workspace.id) == REQUESTS
    assert _count(settings, "provider_costs FINAL", workspace.id) == costs
    # And a plain rerun sees every request present and sends none.
    assert _load(settings, live_server).skipped

    with psycopg.connect(settings.database_url) as conn:
        emails = {
            r[0]
            for r in conn.execute(
                "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = %s",
                (workspace.id,),
            )
        }
        machines = {
            r[0]
            for r in conn.execute("SELECT machine_id FROM devices WHERE workspace_id = %s", (workspace.id,))
        }
        slugs = {
            r[0] for r in conn.execute("SELECT slug FROM projects WHERE workspace_id = %s", (workspace.id,))
        }
        (workspaces,) = conn.execute(
            "SELECT count(*) FROM workspaces WHERE name = %s", (workspace.name,)
        ).fetchone()
        # The Gemini statements are the control plane's, pasted once by the admin: three runs, one version and
        # one audit event each.
        statements = conn.execute(
            "SELECT s.provider, u.email, (SELECT count(*) FROM billing_statement_revisions r"
            " WHERE r.statement_id = s.id) FROM billing_statements s JOIN users u ON u.id = s.entered_by"
            " WHERE s.workspace_id = %s",
            (workspace.id,),
        ).fetchall()
        pasted = conn.execute(
            "SELECT event, actor_label FROM audit_events WHERE workspace_id = %s AND event LIKE 'billing.%%'",
            (workspace.id,),
        ).fetchall()
    assert emails == {m.email for m in MEMBERS}
    assert machines == {d.machine for d in DEVICES}
    assert {p.slug for p in PROJECTS} <= slugs
    assert workspaces == 1
    assert len(statements) == first.statements > 0
    assert set(statements) == {("gemini", MEMBERS[1].email, 1)}
    assert pasted == [("billing.statement_pasted", MEMBERS[1].email)] * first.statements
    assert _count(settings, "billing_statements", workspace.id) == 0  # until the snapshot copies them

    with httpx.Client(base_url=live_server) as browser:
        page = browser.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        signed_in = browser.post(
            "/signin",
            data={"email": first.owner_email, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
        )
        assert signed_in.status_code == 303, signed_in.text[:500]
        assert SESSION_COOKIE in signed_in.cookies
