"""Whether a host name is this machine: the one rule for when plain HTTP and no proxy are fine."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, ``127.0.0.1``, ``::1`` (a name or an address; no port) yes; anything else no."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
