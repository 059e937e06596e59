"""Network addresses as Hilum's doors judge them."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(address: str) -> str:
    """The host of "host:port" (an IPv6 host without its brackets)."""
    return address.rsplit(":", 1)[0].strip("[]")
