"""Control addon: the loopback API served on the proxy port itself.

Requests addressed to the meter (``http://127.0.0.1:8090/v1/...``, or ``https://halton-meter.internal``
through the proxy, which is how ``doctor`` proves TLS interception works) are answered here and never
leave the process:

* ``GET /v1/health`` - liveness, version, pid, bound address;
* ``GET /v1/status`` - counters since start (calls, rows written, queued, errors by kind);
* ``GET /v1/cloud/state`` - what ``halton-meter cloud status --json`` shows (no secrets), so the
  dashboard can detect a running meter;
* ``POST /v1/cloud/connect`` - start a pairing from the dashboard (``{"base_url": optional}``); the
  answer carries the code and approve URL, the daemon polls and writes the credentials.

The cloud routes are guarded (loopback peer, loopback Host, the configured dashboard origin only, CORS
for that origin): see :mod:`halton_meter.cloud.loopback`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mitmproxy import ctx, http

from halton_meter import __version__
from halton_meter.cloud import loopback
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.routing import PREFIXES, TO_METER

if TYPE_CHECKING:
    from halton_meter.cloud.supervisor import CloudSupervisor

logger = logging.getLogger(__name__)

CLOUD_PREFIX = "/v1/cloud/"
MAX_CONNECT_BODY = 4096


class Control:
    """Answers the loopback API. ``extra_status`` adds daemon-level facts (queue depth...)."""

    def __init__(
        self,
        health: Health,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        cloud: CloudSupervisor | None = None,
    ) -> None:
        self.health = health
        self.extra_status = extra_status
        self.cloud = cloud
        self.listen: tuple[str, int] | None = None
        self.started_at = time.time()
        self.on_running: Callable[[tuple[str, int] | None], None] | None = None

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        addrs = proxyserver.listen_addrs() if proxyserver else []
        self.listen = (addrs[0][0], addrs[0][1]) if addrs else None
        self.started_at = time.time()
        if self.on_running is not None:
            self.on_running(self.listen)

    @fail_open("control.request")
    async def request(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.get(TO_METER) or flow.response is not None:
            return
        path = flow.request.path.split("?", 1)[0].rstrip("/") or "/"
        if path.startswith(CLOUD_PREFIX):
            try:
                flow.response = await self._cloud(flow, path)
            except Exception as exc:
                # Answer here whatever happens: a flow addressed to the meter must never go upstream.
                logger.exception("loopback %s failed", path)
                self.health.error("control.cloud", repr(exc))
                flow.response = _json(500, {"error": f"the meter failed to answer {path}: {exc}"})
        elif flow.request.method not in ("GET", "HEAD"):
            flow.response = _json(405, {"error": "the loopback API only answers GET"})
        elif path == "/v1/health":
            flow.response = _json(200, self.health_document())
        elif path == "/v1/status":
            flow.response = _json(200, self.status_document())
        else:
            bases = ", ".join(f"/{p}" for p in PREFIXES.values())
            flow.response = _json(
                404,
                {
                    "error": f"no such route on the meter: {path}",
                    "hint": f"use a provider prefix as base URL ({bases}), or GET /v1/health",
                },
            )

    async def _cloud(self, flow: http.HTTPFlow, path: str) -> http.Response:
        request = flow.request
        if self.cloud is None:
            return _json(404, {"error": "the cloud routes are not available in this process"})
        allowed = self.cloud.dashboard_origin
        origin = request.headers.get("origin")
        refusal = loopback.check(
            method=request.method,
            peername=flow.client_conn.peername,
            host_header=request.host_header,
            origin=origin,
            allowed_origin=allowed,
        )
        if refusal is not None:
            logger.warning(
                "refused %s %s from %s: %s", request.method, path, origin or "no origin", refusal.message
            )
            self.health.event("control.cloud_refused")
            return _json(refusal.status, {"error": refusal.message})
        cors = loopback.cors_headers(allowed if origin is not None else None)
        if request.method == "OPTIONS":
            private = request.headers.get("access-control-request-private-network", "").lower() == "true"
            headers = loopback.cors_headers(allowed, preflight=True, private_network=private)
            return http.Response.make(204, b"", headers)
        if path == "/v1/cloud/state":
            if request.method not in ("GET", "HEAD"):
                return _json(405, {"error": "use GET /v1/cloud/state"}, cors)
            return _json(200, await asyncio.to_thread(self.cloud.state_document), cors)
        if path == "/v1/cloud/connect":
            if request.method != "POST":
                return _json(405, {"error": "use POST /v1/cloud/connect"}, cors)
            assert origin is not None  # loopback.check: a POST carries the dashboard's Origin
            return await self._connect(request, origin, cors)
        return _json(404, {"error": f"no such cloud route: {path}"}, cors)

    async def _connect(self, request: http.Request, origin: str, cors: dict[str, str]) -> http.Response:
        from halton_meter.cloud.supervisor import ConnectRefused

        assert self.cloud is not None
        body = request.get_content(strict=False) or b""
        if len(body) > MAX_CONNECT_BODY:
            return _json(413, {"error": "the body is too large"}, cors)
        try:
            document = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(422, {"error": 'send JSON: {"base_url": optional string}'}, cors)
        base_url = document.get("base_url") if isinstance(document, dict) else None
        if not isinstance(document, dict) or (base_url is not None and not isinstance(base_url, str)):
            return _json(422, {"error": 'send JSON: {"base_url": optional string}'}, cors)
        try:
            status, answer = await asyncio.to_thread(self.cloud.connect, base_url, origin)
        except ConnectRefused as exc:
            return _json(exc.status, {"error": str(exc)}, cors)
        return _json(status, answer, cors)

    def health_document(self) -> dict[str, Any]:
        host, port = self.listen or ("?", 0)
        return {
            "ok": True,
            "service": "halton-meter",
            "version": __version__,
            "pid": os.getpid(),
            "listen": f"{host}:{port}",
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def status_document(self) -> dict[str, Any]:
        document = {**self.health_document(), "events": self.health.events(), "errors": self.health.errors()}
        document["last_error"] = self.health.last_error
        if self.extra_status is not None:
            document.update(self.extra_status())
        return document


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> http.Response:
    return http.Response.make(
        status,
        json.dumps(document, sort_keys=True).encode(),
        {"content-type": "application/json", "cache-control": "no-store", **(headers or {})},
    )
