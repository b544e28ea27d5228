"""The loopback /v1/cloud/* routes, with mitmproxy's test helpers: who may call them, and what they say."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from halton_meter.cloud import loopback
from halton_meter.cloud.config_table import set_cloud_keys
from halton_meter.cloud.supervisor import CloudSupervisor
from halton_meter.control import Control
from halton_meter.health import Health
from halton_meter.home import load_machine_id
from halton_meter.paths import MeterPaths
from halton_meter.routing import TO_METER
from halton_meter.settings import load_settings
from halton_meter.testing.fake_cloud import FakeCloud
from halton_meter.testing.processes import wait_for

DASHBOARD = "http://127.0.0.1:5173"


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def supervisor(home: MeterPaths, cloud: FakeCloud) -> CloudSupervisor:
    set_cloud_keys(home.config, {"dashboard_origin": DASHBOARD, "base_url": cloud.url})
    return CloudSupervisor(load_settings(home.home), Health(), load_machine_id(home), tick=60)


class Asker:
    """Sends requests through one Control addon; one mitmproxy context (and loop) per test."""

    def __init__(self, supervisor: CloudSupervisor) -> None:
        self.control = Control(Health(), cloud=supervisor)
        self.context = taddons.context(self.control)

    def __call__(
        self,
        method: str,
        path: str,
        *,
        origin: str | None = DASHBOARD,
        host: str = "127.0.0.1:8090",
        peer: tuple[str, int] = ("127.0.0.1", 50000),
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> http.Response:
        request = http.Request.make(method, f"http://127.0.0.1:8090{path}", body, headers or {})
        request.headers["host"] = host
        if origin is not None:
            request.headers["origin"] = origin
        flow = tflow.tflow(req=request)
        flow.client_conn.peername = peer
        flow.metadata[TO_METER] = True
        self.context.master.event_loop.run_until_complete(self.control.request(flow))
        assert flow.response is not None
        return flow.response


@pytest.fixture
def ask(supervisor: CloudSupervisor) -> Iterator[Asker]:
    asker = Asker(supervisor)
    yield asker
    supervisor.stop()
    asker.context.master.event_loop.close()


def test_the_dashboard_reads_the_state(ask):
    response = ask("GET", "/v1/cloud/state")
    assert response.status_code == 200
    assert (
        response.headers["access-control-allow-origin"] == DASHBOARD and response.headers["vary"] == "Origin"
    )
    document = json.loads(response.content)
    assert document["state"] == "NOT-CONFIGURED" and document["daemon_running"] is True
    # A local tool without an Origin may read it too (no secrets in it).
    plain = ask("GET", "/v1/cloud/state", origin=None)
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_preflight_names_exactly_the_dashboard(ask):
    response = ask(
        "OPTIONS",
        "/v1/cloud/connect",
        headers={"access-control-request-method": "POST", "access-control-request-private-network": "true"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-private-network"] == "true"
    assert ask("OPTIONS", "/v1/cloud/connect", origin="https://evil.example").status_code == 403


@pytest.mark.parametrize(
    ("method", "kwargs", "says"),
    [
        ("GET", {"origin": "https://evil.example"}, "may not call the meter"),
        ("GET", {"origin": "null"}, "may not call the meter"),
        ("POST", {"origin": None}, "needs the dashboard's Origin"),
        ("GET", {"host": "attacker.example:8090"}, "127.0.0.1 or localhost"),
        ("GET", {"host": "halton-meter.internal"}, "127.0.0.1 or localhost"),
        ("GET", {"peer": ("10.0.0.7", 4000)}, "loopback clients"),
        ("POST", {"peer": ("192.168.1.20", 4000)}, "loopback clients"),
    ],
)
def test_everyone_else_is_refused(ask, method, kwargs, says):
    response = ask(method, "/v1/cloud/state" if method == "GET" else "/v1/cloud/connect", **kwargs)
    assert response.status_code == 403 and says in json.loads(response.content)["error"]
    assert "access-control-allow-origin" not in response.headers


def test_the_dashboard_starts_a_pairing_and_the_daemon_finishes_it(home, ask, cloud):
    response = ask("POST", "/v1/cloud/connect", body=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 202, response.content
    answer = json.loads(response.content)
    assert answer["code"] in cloud.pending_codes() and answer["approve_url"].endswith(answer["code"])
    assert "poll_secret" not in answer
    again = ask("POST", "/v1/cloud/connect", body=b"{}")
    assert again.status_code == 200 and json.loads(again.content)["code"] == answer["code"]  # same pairing
    cloud.approve(answer["code"])
    pairing = ask.control.cloud.pairing
    for _ in range(250):
        if pairing.status != "pending":
            break
        time.sleep(0.02)
    assert pairing.status == "approved"
    assert home.cloud_credentials.exists() and load_settings(home.home).cloud_enabled
    state_now = json.loads(ask("GET", "/v1/cloud/state").content)
    assert state_now["state"] == "ACTIVE" and state_now["pairing"]["status"] == "approved"
    paired = ask("POST", "/v1/cloud/connect", body=b"{}")
    assert paired.status_code == 409 and "cloud connect" in json.loads(paired.content)["error"]


def test_stopping_the_daemon_withdraws_a_dashboard_pairing_code(ask, cloud):
    response = ask("POST", "/v1/cloud/connect", body=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 202, response.content
    code = json.loads(response.content)["code"]
    ask.control.cloud.stop()
    wait_for(lambda: cloud.pairings[code].status == "cancelled", what="the code to be cancelled")
    with pytest.raises(ValueError, match="cancelled"):
        cloud.approve(code)


def test_a_bad_connect_body_is_refused(ask):
    assert ask("POST", "/v1/cloud/connect", body=b"not json").status_code == 422
    bad_url = ask("POST", "/v1/cloud/connect", body=b'{"base_url": "ftp://x"}')
    assert bad_url.status_code == 422 and "base_url" in json.loads(bad_url.content)["error"]


def test_a_dashboard_cannot_point_the_meter_at_another_cloud(ask, cloud):
    """The allowed dashboard's page (or a script injected into it) asks to pair with a foreign server."""
    with FakeCloud() as foreign:
        response = ask("POST", "/v1/cloud/connect", body=json.dumps({"base_url": foreign.url}).encode())
        assert response.status_code == 403, response.content
        error = json.loads(response.content)["error"]
        assert error.startswith("base_url: ") and foreign.url in error and "cloud connect --base-url" in error
        assert response.headers["access-control-allow-origin"] == DASHBOARD  # the page can read why
        assert foreign.pending_codes() == [] and ask.control.cloud.pairing is None
    # The cloud the meter is configured for is this dashboard's cloud: asked by name, it pairs.
    named = ask("POST", "/v1/cloud/connect", body=json.dumps({"base_url": cloud.url + "/"}).encode())
    assert named.status_code == 202 and json.loads(named.content)["code"] in cloud.pending_codes()


def test_a_dashboard_pairs_with_the_cloud_it_is_served_by(home, cloud):
    """A self-hosted cloud serves its own dashboard: the page's origin is the base_url's origin."""
    with FakeCloud() as own:
        set_cloud_keys(home.config, {"dashboard_origin": own.url, "base_url": cloud.url})
        supervisor = CloudSupervisor(load_settings(home.home), Health(), load_machine_id(home), tick=60)
        ask = Asker(supervisor)
        try:
            response = ask(
                "POST", "/v1/cloud/connect", origin=own.url, body=json.dumps({"base_url": own.url}).encode()
            )
            assert response.status_code == 202, response.content
            assert json.loads(response.content)["code"] in own.pending_codes() and cloud.pending_codes() == []
        finally:
            supervisor.stop()
            ask.context.master.event_loop.close()


@pytest.mark.parametrize(
    ("base_url", "origin", "ok"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000", True),
        ("HTTPS://Cloud.Example.com:443/halton", "https://cloud.example.com", True),
        ("http://[::1]:8000", "http://[::1]:8000", True),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8000", False),
        ("https://127.0.0.1:8000", "http://127.0.0.1:8000", False),
        ("http://evil.example", "http://127.0.0.1:8000", False),
        ("http://127.0.0.1:8000.evil.example", "http://127.0.0.1:8000", False),
        ("http://evil.example", "null", False),
        ("https://api.haltonmeter.com", "https://app.haltonmeter.com", True),  # the configured cloud
    ],
)
def test_connect_target_rule(base_url, origin, ok):
    refusal = loopback.check_connect_target(
        base_url=base_url, origin=origin, configured_base_url="https://api.haltonmeter.com"
    )
    assert (refusal is None) is ok


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8090", True),
        ("localhost:8090", True),
        ("LOCALHOST", True),
        ("[::1]:8090", True),
        ("127.0.0.1.nip.io:8090", False),
        ("evil.com", False),
        ("", False),
    ],
)
def test_host_rule(host, ok):
    assert loopback.host_is_loopback(host) is ok


def test_peer_rule():
    assert loopback.peer_is_loopback(("::ffff:127.0.0.1", 1, 0, 0))
    assert loopback.peer_is_loopback(("::1", 1, 0, 0))
    assert not loopback.peer_is_loopback(("::ffff:10.0.0.1", 1, 0, 0))
    assert not loopback.peer_is_loopback(None)


def test_a_revoked_pairing_may_be_replaced_from_the_dashboard(home, ask, cloud):
    from halton_meter.cloud import state
    from halton_meter.cloud.credentials import load_credentials
    from halton_meter.store import open_store

    old = cloud.pair(home)
    cloud.revoke(old)
    conn = open_store(home.db)
    state.set_paused(conn, load_credentials(home).pairing_id, state.PAUSED_UNAUTHORISED, "HTTP 401")
    conn.close()
    response = ask("POST", "/v1/cloud/connect", body=b"{}")
    assert response.status_code == 202, response.content
    assert not home.cloud_credentials.exists()  # the dead pairing is gone; the new one is pending
    assert json.loads(ask("GET", "/v1/cloud/state").content)["pairing"]["status"] == "pending"
