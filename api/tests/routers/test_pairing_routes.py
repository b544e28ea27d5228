"""Pairing: a meter asks for a code, a member approves it in the browser, the meter collects its token."""

from __future__ import annotations

import re
import threading

import psycopg
from fastapi.testclient import TestClient

from halton_api.store.pairing_codes import CODE_ALPHABET, normalise_code
from halton_api.testing.factories import Browser, add_member, batch, bearer, make_user, make_workspace

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def _start(client: TestClient, machine_id: str = "m-1", hostname: str = "vk.local") -> dict:
    response = client.post(
        "/v1/pairing/start", json={"machine_id": machine_id, "hostname": hostname, "meter_version": "0.2.8"}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _poll(client: TestClient, secret: str, wait: float = 0) -> tuple[int, dict]:
    response = client.post("/v1/pairing/poll", json={"poll_secret": secret, "wait_seconds": wait})
    return response.status_code, response.json()


def test_start_gives_a_crockford_code_and_an_approval_url(client: TestClient) -> None:
    started = _start(client)
    assert CODE.match(started["code"])
    assert started["approve_url"] == f"http://testserver/connect?code={started['code']}"
    assert started["interval"] == 2.0
    assert _poll(client, started["poll_secret"]) == (200, {"status": "pending"})


def test_a_nul_in_what_the_meter_sends_is_refused_naming_the_field(client: TestClient) -> None:
    """Found by the API fuzz: PostgreSQL text cannot hold a NUL, which once made `start` answer 500."""
    for field in ("machine_id", "hostname", "meter_version"):
        body = {"machine_id": "m-1", "hostname": "laptop", "meter_version": "1.0", field: "a\x00b"}
        answer = client.post("/v1/pairing/start", json=body)
        assert (
            answer.status_code == 422
            and f"{field}: Value error, cannot contain a NUL" in answer.json()["detail"]
        )


def test_codes_read_the_way_people_type_them() -> None:
    assert set(CODE_ALPHABET).isdisjoint("ILOU")
    assert normalise_code("wxj4-9klm") == "WXJ49KMM".replace("KMM", "KLM").replace("L", "1")
    assert normalise_code(" o0o0 iIlL ") == "00001111"
    assert normalise_code("WXJ4-9KL") is None and normalise_code("WXJ4-9KLU") is None


def test_approve_in_the_browser_then_the_poll_returns_the_token_once(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url, email="owner@example.com")
    workspace = make_workspace(postgres_url, owner=owner, name="Acme Co")
    started = _start(client, machine_id="dev-mbp-vk", hostname="vk.local")
    browser = Browser(client, postgres_url, owner)

    page = browser.get(f"/connect?code={started['code'].lower()}")
    assert page.status_code == 200
    assert "vk.local" in page.text and "dev-mbp-vk" in page.text and workspace.slug in page.text

    # The meter is long-polling while the person approves.
    result: dict = {}
    poller = threading.Thread(
        target=lambda: result.update(
            zip(("status", "body"), _poll(client, started["poll_secret"], 10), strict=True)
        )
    )
    poller.start()
    done = browser.post(
        "/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "approve"}
    )
    poller.join(15)
    assert done.status_code == 200 and "Approved" in done.text
    assert result["status"] == 200 and result["body"]["status"] == "approved"
    token = result["body"]["token"]
    assert token.startswith("hm_sync_")
    assert result["body"]["workspace_slug"] == workspace.slug and result["body"]["machine_id"] == "dev-mbp-vk"

    # Exactly once: the next poll says it was collected; the token works; nothing holds it in clear.
    assert _poll(client, started["poll_secret"])[0] == 410
    assert (
        client.post("/v1/requests/batch", json=batch("dev-mbp-vk", 3), headers=bearer(token)).status_code
        == 200
    )
    whoami = client.get("/v1/daemon/whoami", headers=bearer(token)).json()
    assert whoami["workspace_name"] == "Acme Co" and whoami["hostname"] == "vk.local"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pairing_codes WHERE token_ciphertext IS NOT NULL"
        ).fetchone() == (0,)
        events = [r[0] for r in conn.execute("SELECT event FROM audit_events ORDER BY id").fetchall()]
        dumped = str(conn.execute("SELECT * FROM pairing_codes").fetchall())
    assert "device.paired" in events and "pairing.approved" in events
    assert token not in dumped and started["code"].replace("-", "") not in dumped


def test_deny_makes_the_poll_fail_and_writes_no_device(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    started = _start(client)
    browser = Browser(client, postgres_url, owner)
    denied = browser.post(
        "/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "deny"}
    )
    assert denied.status_code == 200 and "Denied" in denied.text
    status, body = _poll(client, started["poll_secret"])
    assert status == 410 and body["status"] == "denied"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def test_wrong_used_and_expired_codes_say_code_not_found(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    assert "code not found" in browser.get("/connect?code=ZZZZ-ZZZZ").text

    used = _start(client, machine_id="m-used")
    browser.post("/connect", {"code": used["code"], "workspace": workspace.slug, "decision": "approve"})
    again = browser.post(
        "/connect", {"code": used["code"], "workspace": workspace.slug, "decision": "approve"}
    )
    assert again.status_code == 404 and "code not found" in again.text

    expired = _start(client, machine_id="m-old")
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "UPDATE pairing_codes SET expires_at = now() - interval '1 second' WHERE machine_id = 'm-old'"
        )
    page = browser.get(f"/connect?code={expired['code']}")
    assert page.status_code == 404 and "code not found" in page.text
    status, body = _poll(client, expired["poll_secret"])
    assert status == 410 and body["status"] == "expired"
    assert _poll(client, "hm_poll_unknown")[0] == 404


def _cancel(client: TestClient, secret: str) -> tuple[int, dict]:
    response = client.post("/v1/pairing/cancel", json={"poll_secret": secret})
    return response.status_code, response.json()


def test_a_cancelled_code_cannot_be_approved_and_cancelling_is_idempotent(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    started = _start(client)
    assert browser.get(f"/connect?code={started['code']}").status_code == 200  # the page is open...

    assert _cancel(client, started["poll_secret"]) == (200, {"status": "cancelled"})
    assert _cancel(client, started["poll_secret"]) == (200, {"status": "cancelled"})
    # ...and the person clicks Approve after the meter gave up: refused, no device.
    late = browser.post(
        "/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "approve"}
    )
    assert late.status_code == 404 and "cancelled in the terminal" in late.text
    assert "Approved" not in late.text
    page = browser.get(f"/connect?code={started['code']}")
    assert page.status_code == 404 and "cancelled in the terminal" in page.text
    status, body = _poll(client, started["poll_secret"])
    assert status == 410 and body["status"] == "cancelled"
    assert _cancel(client, "hm_poll_unknown")[0] == 404
    assert client.post("/v1/pairing/cancel", json={}).status_code == 422
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def test_cancelling_an_approved_but_uncollected_code_revokes_its_device(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    started = _start(client, machine_id="m-raced")
    approved = browser.post(
        "/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "approve"}
    )
    assert approved.status_code == 200 and "Approved" in approved.text
    # The meter gave up a moment before this approval and never collects the token.
    assert _cancel(client, started["poll_secret"]) == (200, {"status": "cancelled"})
    assert _poll(client, started["poll_secret"])[1]["status"] == "cancelled"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT status FROM devices WHERE machine_id = 'm-raced'").fetchone() == (
            "revoked",
        )
        assert conn.execute(
            "SELECT count(*) FROM pairing_codes WHERE token_ciphertext IS NOT NULL"
        ).fetchone() == (0,)


def test_cancelling_a_collected_code_changes_nothing(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    started = _start(client, machine_id="m-done")
    browser.post("/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "approve"})
    token = _poll(client, started["poll_secret"])[1]["token"]
    assert _cancel(client, started["poll_secret"]) == (200, {"status": "consumed"})
    assert client.get("/v1/daemon/whoami", headers=bearer(token)).status_code == 200


def test_guessing_codes_is_rate_limited_per_user(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    statuses = [browser.get(f"/connect?code=ZZZZ-ZZZ{c}").status_code for c in "0123456789"]
    assert statuses[:5] == [404] * 5 and 429 in statuses
    limited = browser.get("/connect?code=ZZZZ-ZZZZ")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_asking_for_codes_is_rate_limited_per_address(client: TestClient) -> None:
    statuses = [client.post("/v1/pairing/start", json={"machine_id": f"m{i}"}).status_code for i in range(12)]
    assert statuses[:10] == [201] * 10 and statuses[10:] == [429, 429]


def test_a_viewer_cannot_approve_and_sign_in_is_required(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    viewer = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=viewer, role="viewer")
    started = _start(client)
    anonymous = client.get(f"/connect?code={started['code']}")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin?next=/connect")
    refused = Browser(client, postgres_url, viewer).post(
        "/connect", {"code": started["code"], "workspace": workspace.slug, "decision": "approve"}
    )
    assert refused.status_code == 403
    assert _poll(client, started["poll_secret"]) == (200, {"status": "pending"})


def test_approval_needs_the_csrf_token(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    started = _start(client)
    forged = Browser(client, postgres_url, owner).post(
        "/connect",
        {"code": started["code"], "workspace": workspace.slug, "decision": "approve"},
        with_csrf=False,
    )
    assert forged.status_code == 403
    assert _poll(client, started["poll_secret"]) == (200, {"status": "pending"})


def test_bad_start_bodies_name_the_field(client: TestClient) -> None:
    response = client.post("/v1/pairing/start", json={"hostname": "x"})
    assert response.status_code == 422 and "machine_id" in response.json()["detail"]
    response = client.post("/v1/pairing/poll", json={"poll_secret": "x", "wait_seconds": 99})
    assert response.status_code == 422 and "wait_seconds" in response.json()["detail"]
