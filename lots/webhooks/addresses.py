"""Where webhooks may go: public addresses only (and loopback where
WEBHOOK_ALLOW_LOOPBACK_HTTP allows it, for tests and development). Lot staff
choose the URLs; through the worker they must not reach our own network (the
database's REST API, Redis, /metrics)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return settings.WEBHOOK_ALLOW_LOOPBACK_HTTP
    return ip.is_global


def refused_address(url: str) -> str:
    """Why a webhook may not be sent to the URL's host ("" if it may): every
    address its name resolves to must be allowed (a public name can point inside
    our network). The request then resolves the name again, so a name that
    changes its answer in between (DNS rebinding) is not stopped here; a
    firewall around the workers is the complete answer."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError) as exc:
        return f"Cannot resolve {parts.hostname}: {exc}"
    for *_, sockaddr in infos:
        if not address_allowed(sockaddr[0]):
            return f"{parts.hostname} resolves to {sockaddr[0]}, which is not a public address."
    return ""
