"""Runaway detection from the marts to the overview (issue 24): a workspace signed up on the real cloud, its
alert webhook set on Settings: Alerts, four weeks of ordinary calls and a busy Monday in the warehouse; the marts
build as Dagster runs them and the anomaly asset raise nothing. A loop (the same prompt hash every second for
ten minutes on one device) is then on the overview card with its evidence, in the JSON API, and at the webhook
receiver, signed, after the next marts build. The owner closes it from the card with a note: it leaves the card
and the open list, and is listed closed with who closed it and why."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime

import dagster as dg
import psycopg

from cloud_support import PASSWORD, DashboardPage, build_marts
from halton_pipelines.alerts.deliver import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from halton_pipelines.defs.alert_assets import anomaly_alerts
from halton_pipelines.resources import AlertsResource
from halton_pipelines.testing.runaway_scenario import (
    LOOP_CALLS,
    LOOP_HASH,
    last_monday,
    webhook_receiver,
    write_loop,
    write_ordinary_weeks,
)

SIGNING_SECRET = "whsec-runaway-e2e"


def test_a_loop_reaches_the_overview_and_the_webhook_and_a_busy_monday_does_not(
    cloud, person, warehouse, postgres_url, chromium, artifacts_dir
) -> None:
    slug = person.workspace_slug
    monday = last_monday(datetime.now(UTC).date())
    devices = [uuid.uuid4() for _ in range(3)]
    # Three paired laptops, as pairing leaves them (the rows' devices must be the workspace's own).
    with psycopg.connect(postgres_url) as conn, conn.transaction():
        workspace_id, owner = conn.execute(
            "SELECT id, created_by FROM workspaces WHERE slug = %s", (slug,)
        ).fetchone()
        for n, device in enumerate(devices):
            conn.execute(
                "INSERT INTO devices (id, workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (device, workspace_id, f"machine-{secrets.token_hex(4)}", f"laptop-{n}.local", owner,
                 secrets.token_bytes(32), f"hm_sync_{n}"),
            )  # fmt: skip
    client = warehouse.client()
    write_ordinary_weeks(client, warehouse.databases, workspace_id, devices, monday)

    with webhook_receiver() as (url, received):
        alerts_page = f"/{slug}/settings/alerts"
        saved = person.post_form(
            alerts_page, alerts_page, {"webhook_url": url, "webhook_secret": SIGNING_SECRET}
        )
        assert saved.status_code == 303

        def marts_then_anomalies() -> list[dict]:
            resources = build_marts(warehouse, postgres_url, as_of=monday)
            resources["alerts"] = AlertsResource(
                database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"], backoff_seconds=60
            )
            assert dg.materialize([anomaly_alerts], resources=resources).success
            answer = person.client.get(f"/v1/{slug}/anomalies")
            assert answer.status_code == 200
            return answer.json()

        # An ordinary busy Monday: nothing raised, nothing sent, no card.
        assert marts_then_anomalies() == []
        assert received == []
        quiet = person.client.get(f"/{slug}/overview")
        assert quiet.status_code == 200
        assert "data-anomalies" not in quiet.text

        looping = devices[2]
        write_loop(client, warehouse.databases, workspace_id, looping, monday)
        anomalies = marts_then_anomalies()
        loop = next(a for a in anomalies if a["kind"] == "loop")
        assert loop["subject"] == LOOP_HASH and loop["status"] == "open"
        assert loop["evidence"]["requests"] == LOOP_CALLS and loop["evidence"]["devices"] == [str(looping)]
        assert loop["evidence"]["device_names"] == {str(looping): "laptop-2.local"}
        assert "from device laptop-2.local" in loop["message"]
        assert loop["deliveries"] == [
            {
                "channel": "webhook",
                "status": "delivered",
                "attempts": 1,
                "next_attempt_at": None,
                "last_error": None,
                "delivered_at": loop["deliveries"][0]["delivered_at"],
            }
        ]
        posts = [json.loads(body) for _, body in received]
        assert [p["alert"]["id"] for p in posts].count(loop["id"]) == 1
        for headers, body in received:
            assert headers[SIGNATURE_HEADER] == sign(SIGNING_SECRET, int(headers[TIMESTAMP_HEADER]), body)

    page = person.client.get(f"/{slug}/overview")
    assert page.status_code == 200
    assert 'data-anomaly="loop"' in page.text and f"prompt:{LOOP_HASH}" in page.text
    assert (
        f"{LOOP_CALLS} times" in page.text and f'data-anomaly-device="{looping}">laptop-2.local<' in page.text
    )

    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, base_url=cloud.url)
    browser = DashboardPage(context.new_page(), None)
    try:
        browser.sign_in(person.email, PASSWORD)
        opened = browser.page.goto(f"/{slug}/overview")
        assert opened is not None and opened.ok
        card = browser.page.locator("[data-anomalies]")
        assert "Runaway loop" in card.inner_text()
        browser.screenshot(artifacts_dir, "overview-runaway-anomalies")
        loop_item = card.locator('[data-anomaly="loop"]')
        loop_item.locator("input[name=note]").fill("a runaway retry in CI, fixed")
        with browser.page.expect_navigation():
            loop_item.get_by_role("button", name="Close").click()
        assert browser.page.locator('[data-anomaly="loop"]').count() == 0
        assert "closed" in browser.page.locator("p.notice").inner_text()
    finally:
        context.close()
    assert browser.errors == [], browser.errors
    assert all(a["kind"] != "loop" for a in person.client.get(f"/v1/{slug}/anomalies").json())
    (closed,) = person.client.get(f"/v1/{slug}/anomalies", params={"status": "closed"}).json()
    assert (closed["kind"], closed["closed_by"], closed["close_note"]) == (
        "loop", person.email, "a runaway retry in CI, fixed",
    )  # fmt: skip
