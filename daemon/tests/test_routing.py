"""Routing addon, through mitmproxy's own test helpers (taddons, tflow)."""

from __future__ import annotations

import asyncio
import re

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import next_layer, proxyserver
from mitmproxy.test import taddons, tflow

from halton_meter.health import Health
from halton_meter.routing import DOCTOR_HOST, ROUTE, TO_METER, Routing, intercept_patterns

PORT = 8090


def flow_for(url: str, **headers: str) -> http.HTTPFlow:
    request = http.Request.make("POST", url, b"{}", headers)
    return tflow.tflow(req=request)


def routed(url: str, **options) -> tuple[Routing, http.HTTPFlow]:
    async def go():
        routing = Routing(Health())
        with taddons.context(routing) as tctx:
            tctx.configure(routing, listen_port=PORT, **options)
            f = flow_for(url)
            await routing.requestheaders(f)
            return routing, f

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "provider", "upstream_path", "host"),
    [
        ("/anthropic/v1/messages?beta=true", "anthropic", "/v1/messages?beta=true", "api.anthropic.com"),
        ("/openai/v1/chat/completions", "openai", "/v1/chat/completions", "api.openai.com"),
        (
            "/gemini/v1beta/models/gemini-2.5-pro:generateContent",
            "gemini",
            "/v1beta/models/gemini-2.5-pro:generateContent",
            "generativelanguage.googleapis.com",
        ),
        ("/xai/v1/chat/completions", "xai", "/v1/chat/completions", "api.x.ai"),
    ],
)
def test_base_url_requests_go_to_the_provider_over_https(path, provider, upstream_path, host):
    _, f = routed(f"http://127.0.0.1:{PORT}{path}")
    route = f.metadata[ROUTE]
    assert (route.provider, route.mode, route.path) == (provider, "base_url", upstream_path)
    assert (f.request.scheme, f.request.host, f.request.port, f.request.path) == (
        "https",
        host,
        443,
        upstream_path,
    )
    assert f.request.headers["host"] == host


def test_configured_upstream_with_a_path_prefix():
    _, f = routed(
        f"http://localhost:{PORT}/openai/v1/chat/completions",
        halton_upstreams=["openai=https://gateway.corp:8443/llm/openai"],
    )
    assert (f.request.host, f.request.port) == ("gateway.corp", 8443)
    assert f.request.path == "/llm/openai/v1/chat/completions"
    assert f.request.headers["host"] == "gateway.corp:8443"


def test_proxy_mode_keeps_the_destination_unless_redirected():
    _, f = routed("https://api.anthropic.com/v1/messages")
    assert f.metadata[ROUTE].mode == "proxy" and f.request.host == "api.anthropic.com"
    _, f = routed(
        "https://api.anthropic.com/v1/messages", halton_upstreams=["anthropic=https://127.0.0.1:9999"]
    )
    assert (f.request.host, f.request.port) == ("127.0.0.1", 9999)


def test_extra_hosts_are_metered_as_their_provider_and_never_redirected():
    options = {
        "halton_extra_hosts": ["openai=*.openai.azure.com"],
        "halton_upstreams": ["openai=https://127.0.0.1:9999"],
    }
    _, f = routed("https://myco.openai.azure.com/openai/deployments/gpt-4o/chat/completions", **options)
    assert f.metadata[ROUTE].provider == "openai"
    assert f.request.host == "myco.openai.azure.com"


def test_other_hosts_and_meter_routes_are_not_calls():
    _, f = routed("http://example.com/v1/messages")
    assert ROUTE not in f.metadata and TO_METER not in f.metadata
    _, f = routed(f"http://127.0.0.1:{PORT}/v1/health")
    assert f.metadata[TO_METER] is True and ROUTE not in f.metadata
    _, f = routed(f"https://{DOCTOR_HOST}/anthropic/v1/messages")
    assert f.metadata[TO_METER] is True and ROUTE not in f.metadata


def test_only_provider_hosts_are_intercepted():
    async def go():
        routing = Routing(Health())
        with taddons.context(next_layer.NextLayer(), proxyserver.Proxyserver(), routing) as tctx:
            tctx.configure(routing, halton_extra_hosts=["openai=*.openai.azure.com", "anthropic=llm.corp"])
            return list(tctx.options.allow_hosts)

    allowed = asyncio.run(go())
    assert allowed == intercept_patterns({"*.openai.azure.com": "openai", "llm.corp": "anthropic"})

    def intercepted(hostport: str) -> bool:
        return any(re.search(p, hostport) for p in allowed)

    assert intercepted("api.anthropic.com:443") and intercepted("api.x.ai:443")
    assert intercepted("myco.openai.azure.com:443") and intercepted("llm.corp:443")
    assert intercepted(f"{DOCTOR_HOST}:443")
    assert not intercepted("github.com:443") and not intercepted("api.anthropic.com.evil.com:443")
    assert not intercepted("openai.azure.com:443")


@pytest.mark.parametrize(
    "options",
    [
        {"halton_upstreams": ["anthropic"]},
        {"halton_upstreams": ["mistral=https://api.mistral.ai"]},
        {"halton_upstreams": ["openai=ftp://x"]},
        {"halton_extra_hosts": ["nobody=x.example.com"]},
    ],
)
def test_bad_options_are_refused(options):
    async def go():
        routing = Routing(Health())
        with taddons.context(routing) as tctx, pytest.raises(exceptions.OptionsError):
            tctx.configure(routing, **options)

    asyncio.run(go())


def test_the_client_base_is_where_the_client_sent_the_call():
    _, f = routed(f"http://127.0.0.1:{PORT}/anthropic/v1/messages/batches/b1")
    assert f.metadata[ROUTE].client_base == f"http://127.0.0.1:{PORT}/anthropic"
    _, f = routed(
        "https://api.anthropic.com/v1/messages/batches/b1",
        halton_upstreams=["anthropic=https://127.0.0.1:9999"],
    )
    assert f.metadata[ROUTE].client_base == "https://api.anthropic.com"


@pytest.mark.parametrize(
    ("url", "results_url"),
    [
        (
            f"http://127.0.0.1:{PORT}/anthropic",
            f"http://127.0.0.1:{PORT}/anthropic/v1/messages/batches/b1/results",
        ),
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages/batches/b1/results"),
    ],
)
def test_batch_objects_hand_back_a_results_url_the_meter_serves(url, results_url):
    """The provider's results_url (on its own host) is moved under where the client called; only that value
    changes, and Content-Length follows."""
    from halton_meter.batch_links import BatchLinks
    from halton_meter.capture import BUFFER

    async def go():
        routing, links = Routing(Health()), BatchLinks(Health())
        with taddons.context(routing, links) as tctx:
            tctx.configure(routing, listen_port=PORT)
            f = flow_for(f"{url}/v1/messages/batches/b1")
            f.request.method = "GET"
            await routing.requestheaders(f)
            body = (
                b'{"id": "b1", "type": "message_batch", "processing_status": "ended",'
                b' "results_url": "https://api.anthropic.com/v1/messages/batches/b1/results"}'
            )
            f.response = http.Response.make(200, body, {"content-type": "application/json"})
            await links.responseheaders(f)
            await links.response(f)
            return f, body

    f, body = asyncio.run(go())
    assert f.metadata[BUFFER] is True  # held, not streamed, so that it can be changed
    expected = body.replace(b"https://api.anthropic.com/v1/messages/batches/b1/results", results_url.encode())
    assert f.response.content == expected
    assert f.response.headers["content-length"] == str(len(expected))
