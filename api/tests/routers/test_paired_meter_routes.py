"""`/v1/daemon/whoami`, `/v1/daemon/report` and `/v1/daemon/disconnect`, as the meter calls them."""

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
        "spend_limits": [],
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


def _reported(postgres_url: str, device_id) -> tuple | None:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT state, paused_reason, unsynced_rows, meter_version FROM device_reports WHERE device_id = %s",
            (device_id,),
        ).fetchone()


def test_report_keeps_the_last_state_and_shows_it_on_the_devices_list(
    client: TestClient, postgres_url: str
) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    sent = {"state": "DEGRADED", "unsynced_rows": 412, "meter_version": "0.3.0"}
    assert client.post("/v1/daemon/report", json=sent, headers=bearer(created.token)).status_code == 204
    paused = {
        "state": "PAUSED",
        "paused_reason": "paused_manual",
        "unsynced_rows": 3,
        "meter_version": "0.3.1",
    }
    assert client.post("/v1/daemon/report", json=paused, headers=bearer(created.token)).status_code == 204
    assert _reported(postgres_url, created.device.id) == ("PAUSED", "paused_manual", 3, "0.3.1")
    from halton_api.store import devices
    from halton_api.testing.factories import run

    listed = run(postgres_url, lambda c: devices.list_devices(c, workspace_id=workspace.id))
    assert [(d.reported_state, d.reported_paused_reason, d.reported_unsynced_rows) for d in listed] == [
        ("PAUSED", "paused_manual", 3)
    ]


def test_report_refuses_bad_input_and_names_it(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    cases = [
        ({"state": "PAUSED", "unsynced_rows": 0}, "paused_reason"),
        ({"state": "ACTIVE", "paused_reason": "paused_manual", "unsynced_rows": 0}, "paused_reason"),
        ({"state": "SLEEPING", "unsynced_rows": 0}, "state"),
        ({"state": "ACTIVE", "unsynced_rows": -1}, "unsynced_rows"),
        ({"state": "ACTIVE", "unsynced_rows": 0, "meter_version": "v" * 65}, "meter_version"),
        ({"state": "ACTIVE"}, "unsynced_rows"),
    ]
    for body, named in cases:
        response = client.post("/v1/daemon/report", json=body, headers=bearer(created.token))
        assert response.status_code == 422 and named in response.text, (body, response.text)
    assert client.post("/v1/daemon/report", content=b"{", headers=bearer(created.token)).status_code == 422
    assert _reported(postgres_url, created.device.id) is None


def test_report_needs_an_active_device(client: TestClient, postgres_url: str) -> None:
    from halton_api.store import devices
    from halton_api.store.audit import Actor
    from halton_api.testing.factories import run

    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = make_device(postgres_url, workspace=workspace)
    body = {"state": "ACTIVE", "unsynced_rows": 0}
    assert client.post("/v1/daemon/report", json=body).status_code == 401
    run(
        postgres_url,
        lambda c: devices.set_status(
            c, workspace_id=workspace.id, device_id=created.device.id, status="removed", actor=Actor.system()
        ),
    )
    assert client.post("/v1/daemon/report", json=body, headers=bearer(created.token)).status_code == 403
    # Disconnecting itself leaves a NOT-CONFIGURED report: the banner then leaves the machine out.
    assert client.delete("/v1/daemon/disconnect", headers=bearer(created.token)).status_code == 204
    assert _reported(postgres_url, created.device.id) == ("NOT-CONFIGURED", None, 0, "")
    assert client.post("/v1/daemon/report", json=body, headers=bearer(created.token)).status_code == 401
