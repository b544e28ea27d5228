"""Runaway spend in the API: the anomalies the pipelines raised, as JSON (open ones by default, closed or all on
request, each with its evidence and deliveries), only ever the caller's workspace's; a bad status is refused."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from halton_api.testing.factories import bearer, make_api_key, make_user, make_workspace

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
