"""Rate limits on credentials: the token buckets and the account lock's schedule, and the attacks they stop,
tried as an attacker would against a real uvicorn (forwarded-header rotation) and through the app (one
address's bogus tokens must not lock out its valid credentials)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from halton_api import tokens
from halton_api.cloud_settings import CloudSettings
from halton_api.ratelimit import AccountLock, TokenBucketLimiter
from halton_api.store import devices
from halton_api.store.audit import Actor
from halton_api.testing.factories import (
    PASSWORD,
    batch,
    bearer,
    csrf_from,
    make_api_key,
    make_device,
    make_user,
    make_workspace,
    run,
)

_ASKED_FROM = re.compile(r"<dt>Asked</dt><dd>[^<]* from ([^<]+)</dd>")


def test_a_burst_then_a_wait() -> None:
    now = [1000.0]
    limiter = TokenBucketLimiter(burst=3, per_minute=6, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") is None
        limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 10
    assert limiter.retry_after("5.6.7.8") is None  # per address
    now[0] += 10
    assert limiter.retry_after("1.2.3.4") is None


def test_the_table_of_addresses_is_bounded() -> None:
    limiter = TokenBucketLimiter(burst=1, per_minute=1, max_keys=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) == 100


def test_asking_remembers_nothing() -> None:
    """Every valid token is checked against its bucket: checks must not fill the table and evict failures."""
    limiter = TokenBucketLimiter(burst=1, per_minute=1, max_keys=100)
    limiter.failed("ip:attacker")
    for i in range(1000):
        assert limiter.retry_after(f"token:{i}") is None
    assert list(limiter._buckets) == ["ip:attacker"]
    assert limiter.retry_after("ip:attacker") is not None


def test_the_account_lock_doubles_from_the_nth_failure_up_to_its_cap() -> None:
    lock = AccountLock(
        after=5,
        first=timedelta(seconds=30),
        longest=timedelta(minutes=15),
        forget_after=timedelta(hours=24),
    )
    waits = [lock.lock_for(n) for n in range(1, 12)]
    seconds = [w.total_seconds() if w else None for w in waits]
    assert seconds == [None, None, None, None, 30, 60, 120, 240, 480, 900, 900]
    assert lock.lock_for(10**9) == timedelta(minutes=15)  # never overflows, never permanent


# --- forwarded headers: rotating X-Forwarded-For from loopback dodges nothing ---------------------------


def _rotating(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{i + 1}"}


def _sign_in(http: httpx.Client, email: str, password: str, headers: dict[str, str] | None = None):
    token = csrf_from(http.get("/signin").text)
    return http.post(
        "/signin", data={"csrf_token": token, "email": email, "password": password}, headers=headers
    )


def test_rotating_x_forwarded_for_dodges_no_limit(live_server: str, postgres_url: str) -> None:
    """As measured against `halton-cloud up`: 30/30 guesses, 15/15 bogus tokens, 14/14 pairing starts."""
    victim = make_user(postgres_url)
    device = make_device(postgres_url, workspace=make_workspace(postgres_url, owner=victim))
    with httpx.Client(base_url=live_server, timeout=30) as http:
        guesses = [
            _sign_in(http, victim.email, f"guess number {i}", _rotating(i)).status_code for i in range(30)
        ]
        # The account's lock answers from the 6th try, whatever address the header claims.
        assert guesses == [400] * 5 + [429] * 25
        # One password sprayed over many accounts: the address's 10 failures (5 above) then 429.
        sprayed = [
            _sign_in(http, f"someone-{i}@example.com", "Winter2026!", _rotating(i)).status_code
            for i in range(12)
        ]
        assert sprayed == [400] * 5 + [429] * 7

        body = batch(device.device.machine_id, rows=1)
        bogus = [
            http.post(
                "/v1/requests/batch",
                json=body,
                headers={**bearer(tokens.mint(tokens.DEVICE_TOKEN_PREFIX)), **_rotating(i)},
            ).status_code
            for i in range(15)
        ]
        assert bogus == [401] * 10 + [429] * 5

        starts = [
            http.post("/v1/pairing/start", json={"machine_id": f"m{i}"}, headers=_rotating(i)).status_code
            for i in range(14)
        ]
        assert starts == [201] * 10 + [429] * 4


def test_forwarded_headers_are_believed_from_a_listed_proxy(
    settings: CloudSettings, serve, postgres_url: str
) -> None:
    """Behind a proxy the operator lists, each client gets its own buckets, and the pages show its address."""
    behind_proxy = settings.model_copy(update={"forwarded_allow_ips": ["127.0.0.1"]})
    url = serve(behind_proxy)
    with httpx.Client(base_url=url, timeout=30) as http:
        owner = make_user(postgres_url)
        make_workspace(postgres_url, owner=owner)
        starts = [
            http.post("/v1/pairing/start", json={"machine_id": f"m{i}"}, headers=_rotating(i))
            for i in range(14)
        ]
        assert [s.status_code for s in starts] == [201] * 14
        assert _sign_in(http, owner.email, PASSWORD).status_code == 303
        connect = http.get(f"/connect?code={starts[-1].json()['code']}")
        assert _ASKED_FROM.search(connect.text).group(1) == "203.0.113.14"


# --- one address's bad tokens never lock out its valid credentials ---------------------------------


def _revoke(postgres_url: str, workspace, device) -> None:
    run(
        postgres_url,
        lambda c: devices.set_status(
            c,
            workspace_id=workspace.id,
            device_id=device.device.id,
            status="revoked",
            actor=Actor.system(),
        ),
    )


def test_valid_credentials_pass_after_bogus_ones_from_the_same_address(
    client: TestClient, postgres_url: str
) -> None:
    """As measured: 12 bogus tokens from one address got its valid token, key and password answered 429."""
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    device = make_device(postgres_url, workspace=workspace)
    key = make_api_key(postgres_url, workspace=workspace)
    body = batch(device.device.machine_id, rows=1)

    bogus_tokens = [
        client.post(
            "/v1/requests/batch", json=body, headers=bearer(tokens.mint(tokens.DEVICE_TOKEN_PREFIX))
        ).status_code
        for _ in range(12)
    ]
    assert bogus_tokens == [401] * 10 + [429] * 2
    bogus_keys = [
        client.get(
            f"/v1/{workspace.slug}/api-keys", headers=bearer(tokens.mint(tokens.API_KEY_PREFIX))
        ).status_code
        for _ in range(12)
    ]
    assert bogus_keys == [401] * 10 + [429] * 2

    assert client.post("/v1/requests/batch", json=body, headers=bearer(device.token)).status_code == 200
    assert client.get(f"/v1/{workspace.slug}/api-keys", headers=bearer(key.key)).status_code == 200
    assert _sign_in(client, owner.email, PASSWORD).status_code == 303


def test_a_failing_device_holds_up_only_itself(client: TestClient, postgres_url: str) -> None:
    """A revoked meter that keeps retrying from an office's address never stops its colleagues' meters."""
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    stale, healthy = (make_device(postgres_url, workspace=workspace) for _ in range(2))
    _revoke(postgres_url, workspace, stale)
    body = batch(stale.device.machine_id, rows=1)
    answers = [client.post("/v1/requests/batch", json=body, headers=bearer(stale.token)) for _ in range(12)]
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 2
    assert "this sync token" in answers[-1].json()["detail"]  # its own bucket, before any lookup
    healthy_body = batch(healthy.device.machine_id, rows=1)
    for _ in range(3):
        sent = client.post("/v1/requests/batch", json=healthy_body, headers=bearer(healthy.token))
        assert sent.status_code == 200, sent.text


@pytest.mark.parametrize("kind", ["sync token", "API key"])
def test_bad_credentials_of_one_kind_leave_the_others_alone(
    kind: str, client: TestClient, postgres_url: str
) -> None:
    """Bogus sync tokens never spend the address's allowance of API keys or passwords, nor the reverse."""
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    device = make_device(postgres_url, workspace=workspace)
    body = batch(device.device.machine_id, rows=1)

    def bad_token() -> int:
        return client.post(
            "/v1/requests/batch", json=body, headers=bearer(tokens.mint(tokens.DEVICE_TOKEN_PREFIX))
        ).status_code

    def bad_key() -> int:
        return client.get(
            f"/v1/{workspace.slug}/api-keys", headers=bearer(tokens.mint(tokens.API_KEY_PREFIX))
        ).status_code

    flood, other = (bad_token, bad_key) if kind == "sync token" else (bad_key, bad_token)
    assert [flood() for _ in range(11)][-1] == 429
    assert other() == 401  # still its first failure of its own kind
    assert _sign_in(client, "nobody@example.com", "not the password").status_code == 400
