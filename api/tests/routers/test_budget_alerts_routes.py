"""Budget alerts in the API: owners set thresholds on Projects & budgets and channels in Settings (secrets sealed,
never shown back), a viewer cannot; the alerts raised and their deliveries are listed on the page and as JSON."""

from __future__ import annotations

from datetime import date

import psycopg
from fastapi.testclient import TestClient

from halton_api.testing.factories import Browser, add_member, bearer, make_api_key, make_user, make_workspace
from halton_meter.secretbox import ALERT_CHANNEL_PURPOSE, fernet_for


def test_thresholds_channels_and_the_alerts_list(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    settings = f"/{workspace.slug}/settings"
    assert admin.post(f"{settings}/budgets", {"monthly_amount": "1000"}).status_code == 303
    with psycopg.connect(postgres_url) as conn:
        budget_id, thresholds, forecast = conn.execute(
            "SELECT id, alert_thresholds, forecast_alert FROM budgets"
        ).fetchone()
    assert (thresholds, forecast) == ([50, 80, 100], True)  # the defaults

    saved = admin.post(
        f"{settings}/budgets/alerts", {"budget_id": str(budget_id), "thresholds": "90%, 75, 50"}
    )
    assert saved.status_code == 303
    page = admin.get(f"{settings}/projects")
    assert 'value="50, 75, 90"' in page.text and "Alerts at" in page.text
    refused = admin.post(f"{settings}/budgets/alerts", {"budget_id": str(budget_id), "thresholds": "33"})
    assert refused.status_code == 422 and "33" in refused.text and "is not one of" in refused.text

    form = {
        "webhook_url": "https://hooks.example.com/T000/B000/XXX", "webhook_secret": "whsec-very-secret",
        "smtp_host": "smtp.example.com", "smtp_port": "587", "smtp_starttls": "on", "smtp_username": "alerts",
        "smtp_password": "smtp-pass-123", "smtp_from": "alerts@example.com", "smtp_to": "a@example.com; b@example.com",
    }  # fmt: skip
    assert admin.post(f"{settings}/alerts", form).status_code == 303
    shown = admin.get(f"{settings}/alerts").text
    assert "whsec-very-secret" not in shown and "smtp-pass-123" not in shown and "set: leave empty" in shown
    # Saved again without the secrets: the stored ones are kept.
    assert (
        admin.post(f"{settings}/alerts", {**form, "webhook_secret": "", "smtp_password": ""}).status_code
        == 303
    )
    secret = client.app.state.settings.secret()
    box = fernet_for(secret, ALERT_CHANNEL_PURPOSE)
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT webhook_secret_encrypted, smtp_password_encrypted, smtp_to FROM alert_channels"
        ).fetchone()
        assert b"whsec" not in bytes(stored[0]) and box.decrypt(bytes(stored[0])) == b"whsec-very-secret"
        assert box.decrypt(bytes(stored[1])) == b"smtp-pass-123" and stored[2] == [
            "a@example.com",
            "b@example.com",
        ]
        bad = admin.post(f"{settings}/alerts", {**form, "webhook_url": "ftp://x"})
        assert bad.status_code == 422 and "webhook URL" in bad.text
        # An alert as the pipelines raise it, one delivery through and one retrying.
        alert_id = conn.execute(
            "INSERT INTO budget_alerts (workspace_id, budget_id, period, kind, threshold_pct, scope_label, budget_usd,"
            " spend_usd, message) VALUES (%s, %s, %s, 'threshold', 50, 'The workspace', 1000, 512.5,"
            " 'The workspace has reached 50%% of its budget') RETURNING id",
            (workspace.id, budget_id, date.today().replace(day=1)),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO alert_deliveries (alert_id, channel, status, attempts) VALUES (%s, 'webhook', 'delivered', 1),"
            " (%s, 'email', 'pending', 2)",
            (alert_id, alert_id),
        )
        conn.execute(
            "UPDATE alert_deliveries SET last_error = 'SMTPConnectError: refused' WHERE channel = 'email'"
        )
    key = make_api_key(postgres_url, workspace=workspace).key
    (listed,) = client.get(f"/v1/{workspace.slug}/budget-alerts", headers=bearer(key)).json()
    assert listed["threshold_pct"] == 50 and listed["spend_usd"] == "512.500000000"
    assert [(d["channel"], d["status"], d["attempts"]) for d in listed["deliveries"]] == [
        ("email", "pending", 2), ("webhook", "delivered", 1)
    ]  # fmt: skip
    page = admin.get(f"{settings}/alerts").text
    assert "has reached 50%" in page and "SMTPConnectError: refused" in page

    # A viewer sees the settings but cannot change them.
    viewer = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=viewer, role="viewer")
    assert Browser(client, postgres_url, viewer).post(f"{settings}/alerts", form).status_code == 403
