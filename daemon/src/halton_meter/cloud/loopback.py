"""Who may call the loopback ``/v1/cloud/*`` routes: the rules, kept apart from the mitmproxy addon.

The routes let the dashboard (a web page) see the meter's cloud state and start a pairing, so they are
reachable from a browser; these checks keep every other page and every other machine out:

* the peer must be a loopback address (the proxy may be bound wider by configuration);
* the Host header must be ``127.0.0.1``, ``localhost`` or ``[::1]`` (a DNS-rebinding page sends its
  own name);
* a request with an ``Origin`` must come from ``[cloud] dashboard_origin`` exactly; a ``POST`` must
  carry that Origin (browsers always send one; a local process uses the CLI instead);
* CORS answers name that one origin (never ``*``), and preflights allow Private Network Access;
* ``POST /v1/cloud/connect`` pairs only with the cloud the calling dashboard belongs to: a ``base_url``
  whose origin is the page's own, or the cloud the meter is configured for (``config.toml``). A dashboard
  page, even the allowed one, never points the meter at a third server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "content-type"
PREFLIGHT_MAX_AGE_S = 600


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def peer_is_loopback(peername: tuple | None) -> bool:
    if not peername:
        return False
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def host_is_loopback(host_header: str | None) -> bool:
    """``127.0.0.1:8090``, ``localhost``, ``[::1]:8090`` yes; anything else (or no Host) no."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in LOOPBACK_HOSTS


def check(
    *, method: str, peername: tuple | None, host_header: str | None, origin: str | None, allowed_origin: str
) -> Refusal | None:
    """None when the request may proceed, else why not."""
    if not peer_is_loopback(peername):
        return Refusal(403, "the meter's cloud routes answer only this machine (loopback clients)")
    if not host_is_loopback(host_header):
        return Refusal(
            403, "address the meter as 127.0.0.1 or localhost (the Host header names another host)"
        )
    if origin is not None and origin.lower() != allowed_origin:
        return Refusal(
            403,
            f"origin {origin!r} may not call the meter; only [cloud] dashboard_origin ({allowed_origin}) may",
        )
    if method in ("POST", "OPTIONS") and origin is None:
        return Refusal(
            403,
            f"{method} needs the dashboard's Origin header; from a terminal, run `halton-meter cloud connect`",
        )
    return None


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` as a browser's Origin header spells it (default port left out), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}")


def check_connect_target(*, base_url: str, origin: str, configured_base_url: str) -> Refusal | None:
    """None when a dashboard at ``origin`` may pair the meter with ``base_url``, else why not."""
    if base_url.rstrip("/") == configured_base_url.rstrip("/"):
        return None
    target = origin_of(base_url)
    if target is not None and target == origin_of(origin):
        return None
    return Refusal(
        403,
        f"base_url: a dashboard at {origin} may pair this meter only with its own cloud ({origin}) or the "
        f"configured one ({configured_base_url}), not {base_url}; to use another cloud, run "
        "`halton-meter cloud connect --base-url <url>` in a terminal",
    )


def cors_headers(
    origin: str | None, *, preflight: bool = False, private_network: bool = False
) -> dict[str, str]:
    if origin is None:
        return {}
    headers = {"access-control-allow-origin": origin, "vary": "Origin"}
    if preflight:
        headers.update(
            {
                "access-control-allow-methods": ALLOWED_METHODS,
                "access-control-allow-headers": ALLOWED_HEADERS,
                "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
            }
        )
        if private_network:
            headers["access-control-allow-private-network"] = "true"
    return headers
