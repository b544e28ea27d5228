"""Batch links addon: the results URL a provider hands back points at the meter, so the download is metered.

An Anthropic Message Batch object (create, retrieve, list, cancel) carries ``results_url``, on the
provider's own host. The SDK downloads the results from that URL as it is: in base-URL mode, straight
from the provider, past the meter, and the batched calls would never be recorded. So in a batch object
answered through the meter, each ``results_url`` that points at the provider (its public API host, or
the upstream the meter sent the call to) is rewritten to the same path under where the client sent the
call (:attr:`halton_meter.routing.Route.client_base`). In proxy mode to the public API that is the URL
itself, and nothing changes.

Only the value of that field changes: the other bytes of the body stay as they were, and mitmproxy
recomputes Content-Length (and re-applies a Content-Encoding). To change a body the meter must hold it,
so these small responses are not streamed (:data:`halton_meter.capture.BUFFER`). Nothing here can break
a call: a body that does not parse, or any failure, leaves the response untouched.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from halton_meter import providers
from halton_meter.capture import BUFFER
from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.routing import ROUTE, Route

if TYPE_CHECKING:
    from mitmproxy import http

logger = logging.getLogger(__name__)

# Anthropic endpoints that answer with Message Batch objects: create and list, retrieve, cancel.
_BATCH_OBJECTS = re.compile(r"^/v1/messages/batches(/[^/?]+(/cancel)?)?(\?.*)?$")
# The field's key and its JSON string value (escapes included), wherever it is in the document.
_RESULTS_URL = re.compile(rb'("results_url"\s*:\s*)"((?:[^"\\]|\\.)*)"')
MAX_BODY_BYTES = 8 * 1024 * 1024  # a list of batch objects; anything larger is left alone


class BatchLinks:
    """Points ``results_url`` in Anthropic batch objects at the meter. See the module docstring."""

    def __init__(self, health: Health) -> None:
        self.health = health

    @fail_open("batch_links.responseheaders")
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        route: Route | None = flow.metadata.get(ROUTE)
        response = flow.response
        if route is None or response is None or not route.client_base:
            return
        if route.provider != "anthropic" or not _BATCH_OBJECTS.match(route.path):
            return
        length = response.headers.get("content-length")
        if response.status_code != 200 or (length is not None and not _small(length)):
            return
        flow.metadata[BUFFER] = True

    @fail_open("batch_links.response")
    async def response(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.get(BUFFER) or flow.response is None:
            return
        route: Route = flow.metadata[ROUTE]
        body = flow.response.get_content(strict=False) or b""
        if len(body) > MAX_BODY_BYTES:
            return
        rewritten = point_results_at(body, route.client_base, _upstream_prefix(flow, route), _hosts(flow))
        if rewritten != body:
            flow.response.content = rewritten
            self.health.event("batch_links.rewritten")


def point_results_at(
    body: bytes, client_base: str, upstream_prefix: str, hosts: set[tuple[str, int]]
) -> bytes:
    """``body`` with every ``results_url`` on one of ``hosts`` (host, port) moved under ``client_base``."""

    def replace(match: re.Match[bytes]) -> bytes:
        try:
            url = json.loads(b'"' + match.group(2) + b'"')
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return match.group(0)
        if (parts.hostname or "", port) not in hosts:
            return match.group(0)  # somewhere else (a CDN?): the meter cannot stand in for it
        path = parts.path.removeprefix(upstream_prefix) if upstream_prefix else parts.path
        moved = client_base + path + (f"?{parts.query}" if parts.query else "")
        if moved == url:
            return match.group(0)
        return match.group(1) + json.dumps(moved).encode()

    return _RESULTS_URL.sub(replace, body)


def _upstream_prefix(flow: http.HTTPFlow, route: Route) -> str:
    # The upstream's own path prefix (a gateway at https://gw/anthropic): the request went to prefix + path.
    path = flow.request.path
    return path[: -len(route.path)] if route.path and path.endswith(route.path) else ""


def _hosts(flow: http.HTTPFlow) -> set[tuple[str, int]]:
    """The provider's public API host and the upstream the call went to, as (host, port)."""
    route: Route = flow.metadata[ROUTE]
    return {(providers.DEFAULT_HOSTS[route.provider], 443), (flow.request.host.lower(), flow.request.port)}


def _small(length: str) -> bool:
    try:
        return int(length) <= MAX_BODY_BYTES
    except ValueError:
        return False
