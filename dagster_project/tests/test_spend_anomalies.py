"""Runaway detection end to end on real engines (issue 24): four weeks of ordinary history (busy weekdays, quiet
weekends) and a busy Monday raise nothing; a loop (the same prompt hash every second for ten minutes on one
device) is found by the next marts build, recorded once with its evidence and posted, signed, to the webhook
receiver started by the test; building and evaluating again sends nothing twice. A delivery whose anomaly is
closed while it is in flight is not retried."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from halton_meter.secretbox import ALERT_CHANNEL_PURPOSE, fernet_for
from halton_pipelines.alerts.deliver import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver_due, sign
from halton_pipelines.defs.alert_assets import anomaly_alerts
from halton_pipelines.defs.dbt import halton_dbt
from halton_pipelines.defs.rate_row_assets import model_prices
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import (
    AlertsResource,
    ControlPlaneResource,
    HaltonDbtResource,
    WarehouseResource,
)
from halton_pipelines.testing.factories import SECRET
from halton_pipelines.testing.runaway_scenario import (
    LOOP_HASH,
    last_monday,
    webhook_receiver,
    write_loop,
    write_ordinary_weeks,
)

# Two dbt builds of the marts, each about a minute on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)

WEBHOOK_SECRET = "whsec-anomaly-signing-secret"
MONDAY = last_monday(datetime.now(UTC).date())


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    with webhook_receiver() as receiver:
        yield receiver


def test_a_loop_raises_one_anomaly_with_evidence_and_a_busy_monday_raises_nothing(stores, receiver) -> None:
    webhook, received = receiver
    url = stores.control_plane_url
    workspace_id = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(3)]
    with psycopg.connect(url) as conn, conn.transaction():
        owner = conn.execute(
            "INSERT INTO users (email, name, password_hash) VALUES (%s, 'Owner', 'x') RETURNING id",
            (f"owner-{secrets.token_hex(4)}@example.com",),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO workspaces (id, slug, name, created_by) VALUES (%s, %s, 'Runaways', %s)",
            (workspace_id, f"runaways-{secrets.token_hex(3)}", owner),
        )
        for n, device in enumerate(devices):
            conn.execute(
                "INSERT INTO devices (id, workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (device, workspace_id, f"machine-{secrets.token_hex(4)}", f"laptop-{n}.local", owner,
                 secrets.token_bytes(32), f"hm_sync_{n}"),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO alert_channels (workspace_id, webhook_url, webhook_secret_encrypted) VALUES (%s, %s, %s)",
            (
                workspace_id,
                webhook,
                fernet_for(SECRET, ALERT_CHANNEL_PURPOSE).encrypt(WEBHOOK_SECRET.encode()),
            ),
        )
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "control_plane": ControlPlaneResource(database_url=url),
        "dbt": HaltonDbtResource(
            clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix, as_of=MONDAY.isoformat()
        ),
        "alerts": AlertsResource(database_url=url, secret_key=SECRET, backoff_seconds=60),
    }
    client = stores.client()
    # Four weeks of history, then a Monday busier than any before it (half as much again, every device).
    write_ordinary_weeks(client, stores.databases, workspace_id, devices, MONDAY)

    def evaluate() -> list[tuple]:
        assert dg.materialize([halton_dbt], resources=resources).success
        assert dg.materialize([anomaly_alerts], resources=resources).success
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT kind, subject_kind, subject, evidence, message FROM spend_anomalies"
                " WHERE workspace_id = %s ORDER BY kind, subject_kind",
                (workspace_id,),
            ).fetchall()

    assert dg.materialize([control_plane_snapshot, model_prices], resources=resources).success
    assert evaluate() == []  # an ordinary busy Monday
    assert received == []

    # A loop on one laptop at 17:10: the same prompt every second for ten minutes (600 calls, $0.02 each).
    looping = devices[1]
    write_loop(client, stores.databases, workspace_id, looping, MONDAY)
    found = evaluate()
    kinds = {(kind, subject_kind, subject) for kind, subject_kind, subject, *_ in found}
    assert ("loop", "prompt", LOOP_HASH) in kinds
    # The same hour also stands far above its baseline (nothing at 17:00 on earlier Mondays), for the project
    # and the device; the other laptops stay quiet.
    assert kinds == {
        ("loop", "prompt", LOOP_HASH),
        ("spike", "project", "web"),
        ("spike", "device", str(looping)),
    }
    evidence = next(e for kind, *_, e, _ in found if kind == "loop")
    assert evidence["requests"] == 600 and evidence["requests_in_window"] >= 60
    assert evidence["devices"] == [str(looping)]
    assert evidence["spend_usd"] == pytest.approx(12.0)
    assert (
        evidence["window_start"] == f"{MONDAY} 17:10 UTC" and evidence["window_end"] == f"{MONDAY} 17:19 UTC"
    )
    spike = next(e for kind, subject_kind, *_, e, _ in found if subject_kind == "device")
    assert spike["spend_usd"] == pytest.approx(12.0) and spike["baseline_usd"] == 0
    assert spike["baseline_weeks"] == 4 and spike["peak_hour"] == f"{MONDAY} 17:00 UTC"

    # Each anomaly reached the webhook once, signed; building and evaluating again sends nothing more, and an
    # anomaly an owner closed (as the overview's Close does) is not raised again for the same window.
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE spend_anomalies SET status = 'closed', closed_at = now(), closed_by = 'owner'"
            " WHERE workspace_id = %s AND kind = 'loop'",
            (workspace_id,),
        )
    assert len(evaluate()) == 3
    with psycopg.connect(url) as conn:
        statuses = conn.execute(
            "SELECT kind, status FROM spend_anomalies WHERE workspace_id = %s AND subject_kind = 'prompt'",
            (workspace_id,),
        ).fetchall()
    assert statuses == [("loop", "closed")]
    assert len(received) == 3
    posted = []
    for headers, body in received:
        assert headers[SIGNATURE_HEADER] == sign(WEBHOOK_SECRET, int(headers[TIMESTAMP_HEADER]), body)
        document = json.loads(body)
        assert document["alert"]["type"] == "spend_anomaly"
        posted.append(document)
    loop_post = next(d for d in posted if d["alert"]["kind"] == "loop")
    assert "600 times" in loop_post["text"] and "from device laptop-1.local" in loop_post["text"]
    assert loop_post["alert"]["evidence"]["requests"] == 600
    with psycopg.connect(url) as conn:
        events = dict(
            conn.execute(
                "SELECT event, count(*) FROM audit_events WHERE workspace_id = %s AND event LIKE 'spend_anomaly.%%'"
                " GROUP BY event",
                (workspace_id,),
            ).fetchall()
        )
    assert events == {"spend_anomaly.raised": 3, "spend_anomaly.delivered": 3}


class ClosingReceiver(BaseHTTPRequestHandler):
    """A webhook endpoint whose owner closes the anomaly while its post is in flight (the API cancels the
    anomaly's pending deliveries in the same transaction as the close), then answers 500."""

    database_url = ""
    anomaly_id = None
    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        ClosingReceiver.posts += 1
        with psycopg.connect(self.database_url) as conn:
            conn.execute("UPDATE spend_anomalies SET status = 'closed' WHERE id = %s", (self.anomaly_id,))
            conn.execute(
                "UPDATE alert_deliveries SET status = 'cancelled' WHERE anomaly_id = %s AND status = 'pending'",
                (self.anomaly_id,),
            )
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


def test_a_delivery_cancelled_while_in_flight_is_not_retried(stores) -> None:
    url = stores.control_plane_url
    server = ThreadingHTTPServer(("127.0.0.1", 0), ClosingReceiver)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        with psycopg.connect(url) as conn, conn.transaction():
            owner = conn.execute(
                "INSERT INTO users (email, name, password_hash) VALUES (%s, 'Owner', 'x') RETURNING id",
                (f"owner-{secrets.token_hex(4)}@example.com",),
            ).fetchone()[0]
            workspace_id = conn.execute(
                "INSERT INTO workspaces (slug, name, created_by) VALUES (%s, 'Closing', %s) RETURNING id",
                (f"closing-{secrets.token_hex(3)}", owner),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO alert_channels (workspace_id, webhook_url, webhook_secret_encrypted)"
                " VALUES (%s, %s, %s)",
                (
                    workspace_id,
                    f"http://127.0.0.1:{server.server_address[1]}/hooks/anomalies",
                    fernet_for(SECRET, ALERT_CHANNEL_PURPOSE).encrypt(WEBHOOK_SECRET.encode()),
                ),
            )
            anomaly = conn.execute(
                "INSERT INTO spend_anomalies (workspace_id, anomaly_key, kind, subject_kind, subject, message,"
                " evidence) VALUES (%s, 'loop:abc:w', 'loop', 'prompt', 'abc', 'Runaway loop', %s) RETURNING id",
                (workspace_id, Jsonb({"devices": []})),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO alert_deliveries (anomaly_id, channel) VALUES (%s, 'webhook')", (anomaly,)
            )
        ClosingReceiver.database_url, ClosingReceiver.anomaly_id, ClosingReceiver.posts = url, anomaly, 0
        now = datetime.now(UTC)
        sent = deliver_due(url, SECRET, now=now, backoff_seconds=60)
        # The failed try is not turned back into a retry: the close cancelled it, and it stays cancelled.
        assert sent["cancelled"] == 1 and ClosingReceiver.posts == 1
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT status, attempts FROM alert_deliveries WHERE anomaly_id = %s", (anomaly,)
            ).fetchone()
        assert row == ("cancelled", 0)
        deliver_due(url, SECRET, now=now + timedelta(hours=1), backoff_seconds=60)
        assert ClosingReceiver.posts == 1
    finally:
        server.shutdown()
        server.server_close()
