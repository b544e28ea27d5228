"""The devices settings page: what an admin sees and does, and what the meter then gets."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from halton_api.testing.factories import (
    Browser,
    batch,
    bearer,
    make_api_key,
    make_device,
    make_user,
    make_workspace,
)


def test_the_page_lists_devices_and_its_actions_reach_the_meter(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url, email="owner@example.com")
    workspace = make_workspace(postgres_url, owner=owner)
    created = make_device(postgres_url, workspace=workspace, hostname="vk.local", paired_by=owner)
    admin = Browser(client, postgres_url, owner)
    base = f"/{workspace.slug}/settings/devices"
    machine = created.device.machine_id

    client.post("/v1/requests/batch", json=batch(machine, 1), headers=bearer(created.token))
    page = admin.get(base)
    assert page.status_code == 200
    for text in ("vk.local", machine, "owner@example.com", created.device.token_prefix, "active"):
        assert text in page.text
    assert "never" not in page.text.split(machine)[1].split("</tr>")[0]  # last sync is shown

    assert admin.post(f"{base}/{created.device.id}/rename", {"name": "Vera's laptop"}).status_code == 303
    assert "Vera&#39;s laptop" in admin.get(base).text

    assert admin.post(f"{base}/{created.device.id}/remove").status_code == 303
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 1), headers=bearer(created.token)).status_code
        == 403
    )
    assert admin.post(f"{base}/{created.device.id}/reinstate").status_code == 303
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 1), headers=bearer(created.token)).status_code
        == 200
    )
    assert admin.post(f"{base}/{created.device.id}/revoke").status_code == 303
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 1), headers=bearer(created.token)).status_code
        == 401
    )
    # A revoked device cannot be brought back: the machine pairs again instead.
    assert admin.post(f"{base}/{created.device.id}/reinstate").status_code == 409

    with psycopg.connect(postgres_url) as conn:
        events = conn.execute(
            "SELECT actor_label, event FROM audit_events WHERE resource_type = 'device' ORDER BY id"
        ).fetchall()
    assert [e for _, e in events] == [
        "device.paired",
        "device.renamed",
        "device.removed",
        "device.reinstated",
        "device.revoked",
    ]
    assert {label for label, _ in events[1:]} == {"owner@example.com"}


def test_pairing_the_same_machine_again_rekeys_the_same_device(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    first = make_device(postgres_url, workspace=workspace, machine_id="dev-mbp")
    second = make_device(postgres_url, workspace=workspace, machine_id="dev-mbp", hostname="new.local")
    assert second.device.id == first.device.id
    assert first.token != second.token
    assert client.get("/v1/daemon/whoami", headers=bearer(first.token)).status_code == 401
    assert client.get("/v1/daemon/whoami", headers=bearer(second.token)).json()["hostname"] == "new.local"
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute("SELECT token_hash, token_prefix FROM devices").fetchall()
    assert len(stored) == 1
    assert second.token.encode() not in bytes(stored[0][0]) and second.token.startswith(stored[0][1])


def test_the_json_twin_lists_the_same_devices(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    created = [make_device(postgres_url, workspace=workspace) for _ in range(3)]
    key = make_api_key(postgres_url, workspace=workspace).key
    listed = client.get(f"/v1/{workspace.slug}/devices", headers=bearer(key)).json()
    assert {d["id"] for d in listed} == {str(c.device.id) for c in created}
    assert all("token" not in d or d.get("token") is None for d in listed)
    one = client.get(f"/v1/{workspace.slug}/devices/{created[0].device.id}", headers=bearer(key)).json()
    assert one["machine_id"] == created[0].device.machine_id and one["status"] == "active"
