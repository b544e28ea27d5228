"""Routing addon: which flows are LLM calls, and where they go.

Two ways in, one way out:

* **proxy mode** (``HTTPS_PROXY=http://127.0.0.1:8090``): only provider hosts (the default API hosts
  plus configured extra hosts) are TLS-intercepted, through mitmproxy's ``allow_hosts``; every other
  connection is tunnelled byte for byte, its certificate untouched.
* **base-URL mode** (``ANTHROPIC_BASE_URL=http://127.0.0.1:8090/anthropic``...): a plain-HTTP request
  addressed to the meter itself whose path starts with a provider prefix is rewritten to that
  provider's upstream over HTTPS.

A request addressed to the meter without a provider prefix is the loopback control API's business
(:mod:`halton_meter.control`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions

from halton_meter import providers
from halton_meter.failopen import fail_open
from halton_meter.health import Health

if TYPE_CHECKING:
    from mitmproxy import http

logger = logging.getLogger(__name__)

ROUTE = "halton.route"
TO_METER = "halton.to_meter"

# Base-URL prefixes: the path segment a client puts after the meter's address, one per provider.
PREFIXES = {"anthropic": "anthropic", "openai": "openai", "gemini": "gemini", "xai": "xai"}

# `halton-meter doctor` reaches the control API through the proxy under this name, over TLS, to
# prove interception works with the meter's CA. `.internal` is reserved for private use.
DOCTOR_HOST = "halton-meter.internal"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    path_prefix: str

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


@dataclass(frozen=True)
class Route:
    """Set on ``flow.metadata[ROUTE]`` for every metered call."""

    provider: str
    mode: str  # "proxy" or "base_url"
    path: str  # the upstream path (with query), after prefix stripping
    # Where the client sent the call, up to where the upstream path starts: "https://api.anthropic.com"
    # (proxy mode) or "http://127.0.0.1:8090/anthropic" (base-URL mode). A URL the provider hands back
    # for the client to fetch is pointed here (halton_meter.batch_links), so that the fetch is metered too.
    client_base: str = ""


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise exceptions.OptionsError(f"{option}: expected 'provider=value', got {value!r}")
        pairs.append((key.strip(), rest.strip()))
    return pairs


class Routing:
    """Decides which flows are metered and points them at the right upstream."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.upstreams: dict[str, Upstream] = {}
        self.extra_hosts: dict[str, str] = {}  # host pattern -> provider, as providers.identify wants
        self.listen_port: int | None = None
        self.listen_hosts: frozenset[str] = LOOPBACK_NAMES

    def load(self, loader) -> None:
        loader.add_option(
            "halton_upstreams",
            Sequence[str],
            [],
            "provider=URL pairs: where that provider's calls go instead of its public API host "
            "(a company gateway, or a fake server in tests).",
        )
        loader.add_option(
            "halton_extra_hosts",
            Sequence[str],
            [],
            "provider=host pairs: more API hosts to meter as that provider (Azure OpenAI, a "
            "gateway); a leading '*.' matches subdomains.",
        )

    def configure(self, updated: set[str]) -> None:
        if "halton_upstreams" in updated:
            upstreams = {}
            for provider, url in _pairs(ctx.options.halton_upstreams, "halton_upstreams"):
                if provider not in providers.DEFAULT_HOSTS:
                    raise exceptions.OptionsError(f"halton_upstreams: unknown provider {provider!r}")
                try:
                    upstreams[provider] = Upstream.parse(url)
                except ValueError as exc:
                    raise exceptions.OptionsError(f"halton_upstreams: {provider}: {exc}") from None
            self.upstreams = upstreams
        if "halton_extra_hosts" in updated:
            extra = {}
            for provider, host in _pairs(ctx.options.halton_extra_hosts, "halton_extra_hosts"):
                if provider not in providers.DEFAULT_HOSTS:
                    raise exceptions.OptionsError(f"halton_extra_hosts: unknown provider {provider!r}")
                extra[host.lower()] = provider
            self.extra_hosts = extra
            # Intercept only what we meter (and the doctor's probe host); tunnel everything else.
            ctx.options.update(allow_hosts=intercept_patterns(self.extra_hosts))
        if "listen_port" in updated or "listen_host" in updated:
            self.listen_port = ctx.options.listen_port or None
            self.listen_hosts = LOOPBACK_NAMES | {ctx.options.listen_host.lower()}

    def running(self) -> None:
        # With port 0 the OS picked the port: learn the real one to recognise base-URL requests.
        if proxyserver := ctx.master.addons.get("proxyserver"):
            addrs = proxyserver.listen_addrs()
            if addrs:
                self.listen_port = addrs[0][1]

    @fail_open("routing.requestheaders")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        host = request.host.lower()
        if host == DOCTOR_HOST or (host in self.listen_hosts and request.port == self.listen_port):
            self._route_base_url(flow)
            return
        provider = providers.identify(request.pretty_host, self.extra_hosts)
        if provider is None:
            return  # plain HTTP through the proxy to a host we do not meter: not our business
        flow.metadata[ROUTE] = Route(
            provider=provider, mode="proxy", path=request.path, client_base=_origin(request)
        )
        upstream = self.upstreams.get(provider)
        if upstream is not None and host == providers.DEFAULT_HOSTS[provider]:
            self._point_at(flow, upstream, request.path)

    def _route_base_url(self, flow: http.HTTPFlow) -> None:
        # "/anthropic/v1/messages?beta=true" -> provider "anthropic", upstream path "/v1/messages?beta=true"
        head, _, tail = flow.request.path.removeprefix("/").partition("/")
        name, has_query, query = head.partition("?")
        provider = next((p for p, prefix in PREFIXES.items() if prefix == name), None)
        if provider is None or flow.request.host.lower() == DOCTOR_HOST:
            flow.metadata[TO_METER] = True
            return
        upstream_path = "/?" + query if has_query else "/" + tail
        upstream = self.upstreams.get(provider) or Upstream(
            "https", providers.DEFAULT_HOSTS[provider], 443, ""
        )
        client_base = f"{_origin(flow.request)}/{name}"
        flow.metadata[ROUTE] = Route(
            provider=provider, mode="base_url", path=upstream_path, client_base=client_base
        )
        self._point_at(flow, upstream, upstream_path)

    @staticmethod
    def _point_at(flow: http.HTTPFlow, upstream: Upstream, path: str) -> None:
        request = flow.request
        request.scheme = upstream.scheme
        request.host = upstream.host  # also rewrites the Host header
        request.port = upstream.port
        request.path = upstream.path_prefix + path
        default_port = 443 if upstream.scheme == "https" else 80
        request.host_header = (
            upstream.host if upstream.port == default_port else f"{upstream.host}:{upstream.port}"
        )


def _origin(request: http.Request) -> str:
    """scheme://host[:port] as the client addressed the request (before any rewrite)."""
    default_port = 443 if request.scheme == "https" else 80
    authority = request.host if request.port == default_port else f"{request.host}:{request.port}"
    return f"{request.scheme}://{request.host_header or authority}"


def intercept_patterns(extra_hosts: dict[str, str]) -> list[str]:
    """``allow_hosts`` regexes (matched against ``host:port``) for every host we intercept."""
    hosts = [*providers.DEFAULT_HOSTS.values(), DOCTOR_HOST]
    patterns = [rf"^{re.escape(h)}:\d+$" for h in hosts]
    for host in extra_hosts:
        if host.startswith("*."):
            patterns.append(rf"^([^.:]+\.)+{re.escape(host[2:])}:\d+$")
        else:
            patterns.append(rf"^{re.escape(host)}:\d+$")
    return patterns
