"""Captured requests read back through the deduplicated view, page by page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from halton_api.testing.factories import bearer, make_api_key, make_device, make_user, make_workspace, row


def test_paging_covers_every_request_once_newest_first(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    device = make_device(postgres_url, workspace=workspace)
    machine = device.device.machine_id
    now = datetime.now(UTC)
    rows = [row(machine, started_at=now - timedelta(minutes=i)) for i in range(250)]
    body = {"schema_version": 1, "batch_id": "00000000-0000-4000-8000-000000000001", "rows": rows}
    for _ in range(2):  # sent twice: still 250 in every read
        assert client.post("/v1/requests/batch", json=body, headers=bearer(device.token)).status_code == 200
    key = make_api_key(postgres_url, workspace=workspace).key

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/{workspace.slug}/requests", params=params, headers=bearer(key)).json()
        seen.extend(r["request_uid"] for r in page["requests"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["request_uid"] for r in rows]
    one = client.get(
        f"/v1/{workspace.slug}/requests",
        params={"provider_request_id": rows[5]["provider_request_id"]},
        headers=bearer(key),
    ).json()["requests"]
    assert [r["request_uid"] for r in one] == [rows[5]["request_uid"]]
    assert client.get(f"/v1/{workspace.slug}/requests?cursor=garbage", headers=bearer(key)).status_code == 422
