"""Runaway spend in the API: the anomalies the pipelines raised, as JSON (open ones by default, closed or all on
request, each with its evidence and deliveries), only ever the caller's workspace's; a bad status is refused."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from halton_api.testing.factories import Browser, add_member, bearer, make_api_key, make_user, make_workspace

EVIDENCE = {"requests": 600, "requests_in_window": 61, "devices": ["d1"], "spend_usd": 12.0}


def test_anomalies_as_json_by_status_and_workspace(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    ours, theirs = make_workspace(postgres_url, owner=owner), make_workspace(postgres_url, owner=owner)
    with psycopg.connect(postgres_url) as conn:
        # As the pipelines raise them: an open loop delivered by webhook, a closed spike, another workspace's loop.
        loop_id = conn.execute(
            "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message, evidence)"
            " VALUES (%s, 'loop:abc:2026-11-30', 'loop', 'prompt', 'abc', 'Runaway loop: prompt abc', %s) RETURNING id",
            (ours.id, Jsonb(EVIDENCE)),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO alert_deliveries (anomaly_id, channel, status, attempts) VALUES (%s, 'webhook', 'delivered', 1)",
            (loop_id,),
        )
        conn.execute(
            "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message, evidence,"
            " status) VALUES (%s, 'spike:project:web:2026-11-29', 'spike', 'project', 'web', 'Runaway spend', %s,"
            " 'closed')",
            (ours.id, Jsonb(EVIDENCE)),
        )
        conn.execute(
            "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message, evidence)"
            " VALUES (%s, 'loop:zzz:2026-11-30', 'loop', 'prompt', 'zzz', 'Their loop', %s)",
            (theirs.id, Jsonb(EVIDENCE)),
        )
    headers = bearer(make_api_key(postgres_url, workspace=ours).key)
    (open_one,) = client.get(f"/v1/{ours.slug}/anomalies", headers=headers).json()
    assert (open_one["kind"], open_one["subject"], open_one["status"]) == ("loop", "abc", "open")
    assert open_one["evidence"] == EVIDENCE
    assert [(d["channel"], d["status"]) for d in open_one["deliveries"]] == [("webhook", "delivered")]
    every = client.get(f"/v1/{ours.slug}/anomalies", params={"status": "all"}, headers=headers).json()
    assert sorted(a["subject"] for a in every) == ["abc", "web"]  # never the other workspace's
    closed = client.get(f"/v1/{ours.slug}/anomalies", params={"status": "closed"}, headers=headers).json()
    assert [a["subject"] for a in closed] == ["web"]
    refused = client.get(f"/v1/{ours.slug}/anomalies", params={"status": "maybe"}, headers=headers)
    assert refused.status_code == 422 and "status" in refused.text
    assert client.get(f"/v1/{theirs.slug}/anomalies", headers=headers).status_code in (403, 404)


def _open_anomaly(postgres_url: str, workspace_id, key: str = "loop:abc:2026-11-30") -> str:
    with psycopg.connect(postgres_url) as conn:
        return str(
            conn.execute(
                "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message,"
                " evidence) VALUES (%s, %s, 'loop', 'prompt', 'abc', 'Runaway loop: prompt abc', %s) RETURNING id",
                (workspace_id, key, Jsonb(EVIDENCE)),
            ).fetchone()[0]
        )


def _audit(postgres_url: str, workspace_id) -> list[tuple]:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT event, actor_label, resource_id, details->>'note' FROM audit_events"
            " WHERE workspace_id = %s AND event = 'spend_anomaly.closed' ORDER BY id",
            (workspace_id,),
        ).fetchall()


def test_an_owner_closes_an_anomaly_from_the_overview_card(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    anomaly = _open_anomaly(postgres_url, workspace.id)
    browser = Browser(client, postgres_url, owner)
    card = browser.get(f"/{workspace.slug}/overview").text
    assert f'action="/{workspace.slug}/anomalies/{anomaly}/close"' in card  # the card's Close form
    refused = browser.post(f"/{workspace.slug}/anomalies/{anomaly}/close", {"note": "x"}, with_csrf=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    done = browser.post(f"/{workspace.slug}/anomalies/{anomaly}/close", {"note": "a load test, expected"})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/{workspace.slug}/overview")
    assert f"anomalies/{anomaly}/close" not in browser.get(f"/{workspace.slug}/overview").text
    assert _audit(postgres_url, workspace.id) == [
        ("spend_anomaly.closed", owner.email, anomaly, "a load test, expected")
    ]
    (closed,) = browser.get(f"/v1/{workspace.slug}/anomalies", params={"status": "closed"}).json()
    assert (closed["closed_by"], closed["close_note"]) == (owner.email, "a load test, expected")
    assert closed["closed_at"] is not None
    again = browser.post(f"/{workspace.slug}/anomalies/{anomaly}/close")
    assert again.status_code == 409 and "already closed" in again.text
    assert len(_audit(postgres_url, workspace.id)) == 1


def test_closing_an_anomaly_as_json(client: TestClient, postgres_url: str) -> None:
    owner, viewer = make_user(postgres_url), make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    add_member(postgres_url, workspace=workspace, user=viewer, role="viewer")
    other = make_workspace(postgres_url, owner=owner)
    anomaly = _open_anomaly(postgres_url, workspace.id)
    path = f"/v1/{workspace.slug}/anomalies/{anomaly}/close"
    key = bearer(make_api_key(postgres_url, workspace=workspace).key)
    assert client.post(path, json={}, headers=key).status_code in (401, 403)  # API keys only read
    as_viewer = Browser(client, postgres_url, viewer)
    refused = as_viewer.client.post(path, json={}, headers={"x-csrf-token": as_viewer.csrf_token()})
    assert refused.status_code == 403
    browser = Browser(client, postgres_url, owner)
    csrf_header = {"x-csrf-token": browser.csrf_token()}
    long_note = browser.client.post(path, json={"note": "n" * 1001}, headers=csrf_header)
    assert long_note.status_code == 422 and "note" in long_note.text
    elsewhere = browser.client.post(
        f"/v1/{other.slug}/anomalies/{anomaly}/close", json={}, headers=csrf_header
    )
    assert elsewhere.status_code == 404  # another workspace's id is not found, and not closed
    assert _audit(postgres_url, workspace.id) == []
    closed = browser.client.post(path, json={}, headers=csrf_header)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["close_note"]) == ("closed", None)
    assert client.get(f"/v1/{workspace.slug}/anomalies", headers=key).json() == []
    assert len(_audit(postgres_url, workspace.id)) == 1


def test_closing_an_anomaly_cancels_its_deliveries_not_made_yet(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    anomaly = _open_anomaly(postgres_url, workspace.id)
    other = _open_anomaly(postgres_url, workspace.id, key="loop:abc:2026-12-01")
    with psycopg.connect(postgres_url) as conn:
        # Its webhook failed once and waits for a retry; its email is not tried yet; another anomaly's is due.
        conn.execute(
            "INSERT INTO alert_deliveries (anomaly_id, channel, attempts, next_attempt_at, last_error)"
            " VALUES (%s, 'webhook', 1, now() + interval '10 minutes', 'RuntimeError: HTTP 500')",
            (anomaly,),
        )
        conn.execute("INSERT INTO alert_deliveries (anomaly_id, channel) VALUES (%s, 'email')", (anomaly,))
        conn.execute("INSERT INTO alert_deliveries (anomaly_id, channel) VALUES (%s, 'webhook')", (other,))
    browser = Browser(client, postgres_url, owner)
    closed = browser.client.post(
        f"/v1/{workspace.slug}/anomalies/{anomaly}/close",
        json={},
        headers={"x-csrf-token": browser.csrf_token()},
    )
    assert closed.status_code == 200, closed.text
    assert [(d["channel"], d["status"], d["next_attempt_at"]) for d in closed.json()["deliveries"]] == [
        ("email", "cancelled", None),
        ("webhook", "cancelled", None),
    ]
    with psycopg.connect(postgres_url) as conn:
        # The pipelines send only pending deliveries: the other anomaly's is the one left to go out.
        pending = conn.execute(
            "SELECT d.anomaly_id::text, d.channel FROM alert_deliveries d JOIN spend_anomalies s"
            " ON s.id = d.anomaly_id WHERE s.workspace_id = %s AND d.status = 'pending'",
            (workspace.id,),
        ).fetchall()
        (cancelled,) = conn.execute(
            "SELECT details->'cancelled_deliveries' FROM audit_events WHERE workspace_id = %s"
            " AND event = 'spend_anomaly.closed'",
            (workspace.id,),
        ).fetchone()
    assert pending == [(other, "webhook")]
    assert cancelled == ["email", "webhook"]
