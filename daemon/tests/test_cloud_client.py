"""CloudClient's whoami, made with the standard library rather than httpx (a fast ``cloud whoami``,
issue 18): every answer and failure means what it means on the httpx path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from halton_meter.cloud.client import CloudClient, CloudRefused, CloudUnreachable
from halton_meter.home import ensure_machine_id
from halton_meter.paths import MeterPaths
from halton_meter.testing.fake_cloud import FakeCloud
from halton_meter.testing.fake_providers import fake_providers


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def token(cloud: FakeCloud, home: MeterPaths) -> str:
    return cloud.pair(home)


def test_whoami_names_the_workspace_and_machine(cloud, token, home):
    with CloudClient(cloud.url) as client:
        identity = client.whoami(token)
    assert (identity.workspace_slug, identity.hostname) == ("acme-co", "test-host")
    assert identity.machine_id == ensure_machine_id(home)


@pytest.mark.parametrize(("knob", "status"), [("revoke", 401), ("remove", 403)])
def test_a_refused_token_carries_the_status_and_the_clouds_detail(cloud, token, knob, status):
    getattr(cloud, knob)(token)
    with CloudClient(cloud.url) as client, pytest.raises(CloudRefused) as refused:
        client.whoami(token)
    assert refused.value.status == status and refused.value.detail


def test_a_busy_cloud_says_when_to_retry(cloud, token):
    cloud.fail_next(1, status=503, retry_after=7, path="/v1/daemon/whoami")
    with CloudClient(cloud.url) as client, pytest.raises(CloudRefused) as refused:
        client.whoami(token)
    assert refused.value.status == 503 and refused.value.retry_after == 7


def test_no_answer_is_unreachable_and_names_the_host():
    with (
        CloudClient("http://127.0.0.1:9") as client,
        pytest.raises(CloudUnreachable, match=r"cannot reach 127\.0\.0\.1:9: "),
    ):
        client.whoami("token")


def test_tls_is_verified(server_dir):
    # A server whose certificate comes from a CA no root store holds: refused, not trusted.
    with fake_providers(server_dir / "pki") as servers:
        url = servers.by_name("openai").url
        assert url.startswith("https://")
        with CloudClient(url) as client, pytest.raises(CloudUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            client.whoami("token")


def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else():
    seen: list[str] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with CloudClient(url) as client, pytest.raises(CloudRefused) as refused:
            client.whoami("secret")
    finally:
        server.shutdown()
        server.server_close()
    assert refused.value.status == 307 and seen == ["/v1/daemon/whoami"]
