"""The loopback API addon, with mitmproxy's test helpers."""

from __future__ import annotations

import asyncio
import json

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from halton_meter.control import Control
from halton_meter.health import Health
from halton_meter.routing import TO_METER


def ask(method: str, path: str, marked: bool = True) -> http.HTTPFlow:
    async def go():
        health = Health()
        health.error("capture.stream", "boom")
        control = Control(health, extra_status=lambda: {"rows_queued": 3})
        with taddons.context(control):
            flow = tflow.tflow(req=http.Request.make(method, f"http://127.0.0.1:8090{path}"))
            if marked:
                flow.metadata[TO_METER] = True
            await control.request(flow)
            return flow

    return asyncio.run(go())


def test_health_and_status():
    health = ask("GET", "/v1/health").response
    assert health.status_code == 200 and json.loads(health.content)["service"] == "halton-meter"
    status = json.loads(ask("GET", "/v1/status").response.content)
    assert status["errors"] == {"capture.stream": 1} and status["rows_queued"] == 3
    assert status["last_error"] == "capture.stream: boom"


def test_unknown_routes_and_methods():
    missing = ask("GET", "/v2/whatever").response
    assert missing.status_code == 404 and "/openai" in json.loads(missing.content)["hint"]
    assert ask("POST", "/v1/health").response.status_code == 405


def test_flows_not_for_the_meter_are_ignored():
    assert ask("GET", "/v1/health", marked=False).response is None
