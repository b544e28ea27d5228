"""Control addon: the loopback API served on the proxy port itself.

Requests addressed to the meter (``http://127.0.0.1:8090/v1/...``, or ``https://halton-meter.internal``
through the proxy, which is how ``doctor`` proves TLS interception works) are answered here and never
leave the process:

* ``GET /v1/health`` - liveness, version, pid, bound address;
* ``GET /v1/status`` - counters since start (calls, rows written, queued, errors by kind).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, http

from halton_meter import __version__
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.routing import PREFIXES, TO_METER

logger = logging.getLogger(__name__)


class Control:
    """Answers the loopback API. ``extra_status`` adds daemon-level facts (queue depth...)."""

    def __init__(self, health: Health, extra_status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.health = health
        self.extra_status = extra_status
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
        if flow.request.method not in ("GET", "HEAD"):
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


def _json(status: int, document: dict[str, Any]) -> http.Response:
    return http.Response.make(
        status,
        json.dumps(document, sort_keys=True).encode(),
        {"content-type": "application/json", "cache-control": "no-store"},
    )
