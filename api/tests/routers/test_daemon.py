"""`/v1/daemon/whoami` and `/v1/daemon/disconnect`, as the meter calls them."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from halton_api.testing.factories import batch, bearer, make_device, make_user, make_workspace


def test_whoami_names_the_workspace_and_machine(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url), name="Acme Co")
    created = make_device(postgres_url, workspace=workspace, machine_id="dev-mbp-vk", hostname="vk.local")
    response = client.get("/v1/daemon/whoami", headers=bearer(created.token))
    assert response.status_code == 200
    assert response.json() == {
        "workspace_id": str(workspace.id),
        "workspace_slug": "acme-co",
        "workspace_name": "Acme Co",
        "device_id": str(created.device.id),
        "machine_id": "dev-mbp-vk",
        "hostname": "vk.local",
    }


def test_disconnect_revokes_the_token_at_once(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace, hostname="vk.local")
    assert client.delete("/v1/daemon/disconnect", headers=bearer(created.token)).status_code == 204
    sent = client.post(
        "/v1/requests/batch", json=batch(created.device.machine_id, 1), headers=bearer(created.token)
    )
    assert sent.status_code == 401
    assert client.delete("/v1/daemon/disconnect", headers=bearer(created.token)).status_code == 401
    with psycopg.connect(postgres_url) as conn:
        status = conn.execute("SELECT status FROM devices WHERE id = %s", (created.device.id,)).fetchone()
        event = conn.execute(
            "SELECT actor_type, actor_id, event, details->>'from' FROM audit_events WHERE event = 'device.revoked'"
        ).fetchone()
    assert status == ("revoked",)
    assert event == ("device", created.device.id, "device.revoked", "active")


def test_a_removed_machine_may_still_disconnect_itself(client: TestClient, postgres_url: str) -> None:
    from halton_api.store import devices
    from halton_api.store.audit import Actor
    from halton_api.testing.factories import run

    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    run(
        postgres_url,
        lambda c: devices.set_status(
            c, workspace_id=workspace.id, device_id=created.device.id, status="removed", actor=Actor.system()
        ),
    )
    assert client.delete("/v1/daemon/disconnect", headers=bearer(created.token)).status_code == 204
    assert client.get("/v1/daemon/whoami", headers=bearer(created.token)).status_code == 401
